"""What the admin dashboard needs at run time, stored as ``app.state.admin``."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from coldrelay.config import Settings
from coldrelay.dns import Resolver
from coldrelay.web.admin.downloads import CredentialStash
from coldrelay.web.admin.flash import FlashBox
from coldrelay.web.admin.throttle import LoginThrottle


@dataclass
class AdminState:
    """The database, settings and resolver the pages use, and the dashboard's in-memory parts.

    ``throttle``, ``flashes`` and ``downloads`` live in this process only (see their modules for why
    that is acceptable); a second web process would have its own.
    """

    engine: Engine
    sessions: sessionmaker[Session]
    settings: Settings
    resolver: Resolver
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    flashes: FlashBox = field(default_factory=FlashBox)
    downloads: CredentialStash = field(default_factory=CredentialStash)
