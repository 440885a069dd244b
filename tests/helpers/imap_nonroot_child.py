"""Run by test_imap_dovecot as an unprivileged user: DovecotService the way a developer's machine runs it.

argv: data directory (owned by this user), IMAP port. Prints one line per step for the test to check.
"""

from __future__ import annotations

import asyncio
import imaplib
import ssl
import sys
from pathlib import Path

from argon2 import PasswordHasher
from sqlalchemy import text

from coldrelay.config import ImapSettings, ListenAddress, Settings
from coldrelay.db import create_engine, upgrade_database
from coldrelay.mta.imap import DovecotService, certificate_files
from coldrelay.mta.tls import ensure_certificate

ADDRESS, PASSWORD = "dev@nonroot.test", "a long enough password"


def main() -> None:
    data_dir, port = Path(sys.argv[1]), int(sys.argv[2])
    engine = create_engine(f"sqlite:///{data_dir / 'coldrelay.db'}")
    upgrade_database(engine)
    with engine.begin() as connection:  # no DKIM key needed here: the rows IMAP reads, written directly
        connection.execute(text("INSERT INTO domains (id, name, created_at) VALUES (1, 'nonroot.test', '2024-01-01')"))
        connection.execute(
            text(
                "INSERT INTO mailboxes (address, domain_id, password_hash, enabled, created_at) "
                "VALUES (:a, 1, :h, 1, '2024-01-01')"
            ),
            {"a": ADDRESS, "h": PasswordHasher().hash(PASSWORD)},
        )
    settings = Settings(
        data_dir=data_dir, database_url="unused", hostname="localhost", imap=ImapSettings(True, ListenAddress("127.0.0.1", port))
    )
    ensure_certificate(data_dir, settings.hostname)
    cert_file, key_file = certificate_files(settings)
    service = DovecotService(settings, engine, cert_file=cert_file, key_file=key_file)

    def session() -> None:
        client = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ssl.create_default_context(cafile=str(cert_file)), timeout=10)
        print("login", client.login(ADDRESS, PASSWORD)[0])
        print("select", client.select("INBOX")[0])
        print("create", client.create("Replies")[0])
        client.logout()

    async def run() -> None:
        await service.start()
        print("group", service.pid)
        try:
            await asyncio.to_thread(session)
        finally:
            await service.stop()
        print("stopped")

    asyncio.run(run())


if __name__ == "__main__":
    main()
