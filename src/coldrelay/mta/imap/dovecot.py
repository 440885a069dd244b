"""IMAP for the sending platforms: Debian's Dovecot, run by ``coldrelay serve`` over the MX's Maildirs.

Why Dovecot, and why this shape:

* IMAP is large (UIDs, flags, MOVE, IDLE, partial fetches, many client quirks); Dovecot is the
  reference server and reads the Maildirs the MX writes without any glue.
* Authentication is a passwd-file regenerated from the database (``passdb.py``): the argon2id hashes
  coldrelay already stores are valid Dovecot ``{ARGON2ID}`` hashes, so no second password exists
  and no process calls back into Python per login. ``refresh_accounts`` rewrites it (serve calls it
  periodically and after mailbox changes); a disabled mailbox has no line and cannot log in. The
  alternative, checkpassword calling back into coldrelay, costs a Python start per login and a
  second code path to keep safe.
* The instance is private (``conf.py``): ``dovecot -F -c <data-dir>/dovecot/dovecot.conf`` as our
  child, in its own session, with its own base_dir, state and log in the data directory.
* Under root, Dovecot refuses to open mail as uid 0, so the Maildirs belong to a mail user and the
  MX must write them as that user (``mailstore.OwnedMaildirStore``; ``mail_owner`` says who).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import subprocess
import time
from pathlib import Path

from sqlalchemy import Engine

from coldrelay.config import ListenAddress, Settings
from coldrelay.mta.imap.conf import DEBIAN_DH_PARAMS, DovecotLayout, current_run_as, render_config
from coldrelay.mta.imap.errors import INSTALL_HINT, ImapUnavailable
from coldrelay.mta.imap.mailstore import MailOwner, adopt_mail_tree
from coldrelay.mta.imap.passdb import enabled_mailboxes, passdb_text, write_passdb
from coldrelay.mta.tls import SELF_SIGNED_CERT, SELF_SIGNED_KEY, TLS_DIR_NAME

DOVECOT_BINARY = Path("/usr/sbin/dovecot")
START_TIMEOUT = 15.0  # seconds for the IMAP port to greet after the start
STOP_TIMEOUT = 10.0  # seconds Dovecot gets to close its sessions before it is killed
GROUP_EXIT_TIMEOUT = 3.0  # seconds Dovecot's children get to follow their master out
GREETING = b"coldrelay IMAP ready."


def dovecot_available() -> bool:
    """Dovecot's master binary is installed (Debian's dovecot-core, pulled in by dovecot-imapd)."""
    return DOVECOT_BINARY.is_file() and os.access(DOVECOT_BINARY, os.X_OK)


def certificate_files(settings: Settings) -> tuple[Path, Path]:
    """The certificate and key Dovecot serves: the SMTP listeners' pair, configured or self-signed.

    The self-signed pair is the one ``mta.tls.ensure_certificate`` writes; call that first.
    """
    if settings.smtp.tls_cert is not None and settings.smtp.tls_key is not None:
        return settings.smtp.tls_cert, settings.smtp.tls_key
    directory = settings.data_dir / TLS_DIR_NAME
    return directory / SELF_SIGNED_CERT, directory / SELF_SIGNED_KEY


def mail_owner() -> MailOwner:
    """Who owns the Maildirs Dovecot serves: this user, or under root the mail user (see ``conf.py``)."""
    run_as = current_run_as()
    return MailOwner(run_as.mail_uid, run_as.mail_gid)


class DovecotService:
    """One private Dovecot serving IMAPS for every enabled mailbox on ``settings.imap.listen``."""

    def __init__(self, settings: Settings, engine: Engine, *, cert_file: Path, key_file: Path) -> None:
        if not 1 <= settings.imap.listen.port <= 65535:
            raise ValueError(f"Dovecot needs a fixed port to listen on, not {settings.imap.listen}")
        self._settings = settings
        self._engine = engine
        self._cert_file = cert_file
        self._key_file = key_file
        self._layout = DovecotLayout(settings.data_dir)
        self._process: asyncio.subprocess.Process | None = None
        self._refresh_lock = asyncio.Lock()

    @property
    def listen(self) -> ListenAddress:
        return self._settings.imap.listen

    @property
    def log_file(self) -> Path:
        """Dovecot's own log (logins, failures, errors)."""
        return self._layout.log_file

    @property
    def pid(self) -> int | None:
        """The Dovecot master's process id while it runs."""
        return self._process.pid if self._process is not None and self._process.returncode is None else None

    async def start(self) -> None:
        """Write the configuration and password file, start Dovecot, and wait until IMAPS greets."""
        if self._process is not None:
            raise RuntimeError("this Dovecot service is already started")
        if not dovecot_available():
            raise ImapUnavailable(f"{DOVECOT_BINARY} is not installed. {INSTALL_HINT}")
        for path in (self._cert_file, self._key_file):
            if not path.is_file():
                raise ImapUnavailable(f"the TLS file {path} for IMAP does not exist")
        run_as = current_run_as()
        config = render_config(
            self._layout,
            self.listen,
            run_as,
            cert_file=self._cert_file,
            key_file=self._key_file,
            dh_file=DEBIAN_DH_PARAMS if DEBIAN_DH_PARAMS.is_file() else None,
        )
        await asyncio.to_thread(self._prepare, config, MailOwner(run_as.mail_uid, run_as.mail_gid))
        await self.refresh_accounts()
        with self._layout.log_file.open("ab") as log:  # startup errors Dovecot prints before its log is set up
            self._process = await asyncio.create_subprocess_exec(
                str(DOVECOT_BINARY),
                "-F",
                "-c",
                str(self._layout.config_file),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C in a terminal reaches coldrelay, which stops Dovecot in order
            )
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise

    async def refresh_accounts(self) -> int:
        """Rewrite the password file from the database (atomic replace); returns how many mailboxes can log in."""
        async with self._refresh_lock:
            rows = await asyncio.to_thread(enabled_mailboxes, self._engine)
            text, count = passdb_text(rows)
            await asyncio.to_thread(write_passdb, self._layout.passdb_file, text)
            return count

    async def stop(self) -> None:
        """Stop Dovecot and every process it started; remove a pid file it left behind."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()  # the master closes its sessions and children, then exits
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        # Dovecot's helpers (log, anvil, config, stats, login and imap processes) outlive a master
        # stopped this way; they are all in its process group, which only they can still be in.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        if not await _group_ends(process.pid, GROUP_EXIT_TIMEOUT):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await _group_ends(process.pid, GROUP_EXIT_TIMEOUT)
        self._layout.pid_file.unlink(missing_ok=True)

    def _prepare(self, config: str, owner: MailOwner) -> None:
        layout = self._layout
        for directory in (layout.root, layout.base_dir, layout.state_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _stop_orphan(layout)
        tmp = layout.config_file.with_name(f".{layout.config_file.name}.tmp")
        tmp.write_text(config, encoding="utf-8")
        tmp.chmod(0o600)
        os.replace(tmp, layout.config_file)
        adopt_mail_tree(layout.mail_root, owner)

    async def _wait_ready(self) -> None:
        """Poll until the port completes a TLS handshake and greets as our instance; fail on early exit."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only "is it up": the certificate is the operator's business
        while True:
            process = self._process
            if process is None or process.returncode is not None:
                code = None if process is None else process.returncode
                raise ImapUnavailable(f"Dovecot exited at start (status {code}): {self._log_tail()}")
            if await _greets(self.listen, context):
                return
            if loop.time() > deadline:
                raise ImapUnavailable(f"Dovecot did not answer on {self.listen} within {START_TIMEOUT:.0f} s: {self._log_tail()}")
            await asyncio.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            lines = self._layout.log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        problems = [line for line in lines if "Fatal:" in line or "Error:" in line]
        detail = " | ".join((problems or lines)[-3:]) or "no log output"
        return f"{detail} (log: {self._layout.log_file})"


async def _greets(listen: ListenAddress, context: ssl.SSLContext) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(listen.host, listen.port, ssl=context), 2)
    except (OSError, ssl.SSLError, TimeoutError):
        return False
    try:
        line = await asyncio.wait_for(reader.readline(), 2)
    except (OSError, ssl.SSLError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    return line.startswith(b"* OK") and GREETING in line


def live_group_members(group: int) -> list[int]:
    """Processes (zombies excluded) in process group ``group``, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # it ended while we looked
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            members.append(int(entry.name))
    return members


async def _group_ends(group: int, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await asyncio.to_thread(live_group_members, group):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _stop_orphan(layout: DovecotLayout) -> None:
    """End a Dovecot that an earlier, crashed coldrelay started on this data directory.

    It is recognised by the pid file in our base_dir and by its command line naming our config
    file; anything else (a system Dovecot, a reused pid) is left alone. Blocking.
    """
    try:
        pid = int(layout.pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if str(DOVECOT_BINARY).encode() not in cmdline[:1] or str(layout.config_file).encode() not in cmdline:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
