"""IMAP inside ``coldrelay serve``: start the private Dovecot, keep its accounts in step with the
database, and say plainly when IMAP is off instead of failing the whole server."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from rich.console import Console
from sqlalchemy import Engine

from coldrelay.config import Settings
from coldrelay.mta.imap import INSTALL_HINT, DovecotService, ImapUnavailable, certificate_files, dovecot_available

log = logging.getLogger(__name__)

REFRESH_SECONDS = 10.0  # a mailbox created or disabled in the dashboard or CLI reaches IMAP this soon


class ImapRunner:
    """A started Dovecot and the task that refreshes its accounts."""

    def __init__(self, service: DovecotService) -> None:
        self.service = service
        self._refresher = asyncio.create_task(self._refresh_forever(), name="coldrelay-imap-accounts")

    @classmethod
    async def start(cls, settings: Settings, engine: Engine, console: Console) -> ImapRunner | None:
        """Start IMAP, or print why it is off and return ``None`` (the rest of serve runs on)."""
        if not dovecot_available():
            console.print(f"IMAP is off: {INSTALL_HINT}.")
            return None
        cert, key = certificate_files(settings)
        service = DovecotService(settings, engine, cert_file=cert, key_file=key)
        try:
            await service.start()
        except ImapUnavailable as exc:
            console.print(f"[yellow]IMAP is off:[/yellow] {exc}")
            return None
        console.print(f"IMAP (Dovecot, implicit TLS) on [bold]{service.listen}[/bold], user name = the full address.")
        return cls(service)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.service.refresh_accounts()
            except Exception:
                log.exception("refreshing IMAP accounts failed; trying again in %s s", REFRESH_SECONDS)

    async def stop(self) -> None:
        self._refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._refresher
        await self.service.stop()
