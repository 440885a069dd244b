"""The mail host's data: SQLAlchemy models, engines with durable settings, migrations, accounts.

SQLite in the data directory by default, any ``postgresql+psycopg://`` URL for several nodes.
Callers use what is re-exported here; the modules behind it may move.
"""

from coldrelay.db.accounts import (
    AccountError,
    AlreadyExists,
    InvalidName,
    UnknownDomain,
    create_domain,
    create_mailbox,
    get_domain,
    list_domains,
    list_mailboxes,
    normalize_address,
    normalize_domain,
    verify_password,
)
from coldrelay.db.dkim_keys import generate_dkim_key, txt_strings
from coldrelay.db.engine import DatabaseURLError, create_engine, session_factory
from coldrelay.db.migrate import current_revision, head_revision, upgrade_database
from coldrelay.db.models import (
    AdminSession,
    AdminUser,
    ApiToken,
    Base,
    DeliveryLog,
    DeliveryOutcome,
    DkimAlgorithm,
    DkimKey,
    Domain,
    LogSource,
    Mailbox,
    MessageState,
    PauseScope,
    QueuedMessage,
    SenderPause,
    utcnow,
)

__all__ = [
    "AccountError",
    "AdminSession",
    "AdminUser",
    "AlreadyExists",
    "ApiToken",
    "Base",
    "DatabaseURLError",
    "DeliveryLog",
    "DeliveryOutcome",
    "DkimAlgorithm",
    "DkimKey",
    "Domain",
    "InvalidName",
    "LogSource",
    "Mailbox",
    "MessageState",
    "PauseScope",
    "QueuedMessage",
    "SenderPause",
    "UnknownDomain",
    "create_domain",
    "create_engine",
    "create_mailbox",
    "current_revision",
    "generate_dkim_key",
    "get_domain",
    "head_revision",
    "list_domains",
    "list_mailboxes",
    "normalize_address",
    "normalize_domain",
    "session_factory",
    "txt_strings",
    "upgrade_database",
    "utcnow",
    "verify_password",
]
