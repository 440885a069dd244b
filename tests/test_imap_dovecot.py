"""IMAP through a real Dovecot over the Maildirs a real MX wrote, on 127.0.0.1.

The MX (with the SPF/DKIM/DMARC step against the loopback DNS server) stores into a temporary data
directory through the store serve uses with IMAP; DovecotService serves it with the self-signed
certificate ensure_certificate makes; imaplib logs in over implicit TLS trusting that certificate.
Dovecot must be installed: without it these tests fail (CI installs dovecot-imapd), they never skip.
"""

from __future__ import annotations

import imaplib
import itertools
import os
import pwd
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from coldrelay.config import ImapSettings, ListenAddress, Settings
from coldrelay.db import create_engine, create_mailbox, session_factory
from coldrelay.db.models import Mailbox
from coldrelay.dns import Resolver
from coldrelay.mta.checks import AuthenticationStep
from coldrelay.mta.edge import DatabaseDirectory, start_mx
from coldrelay.mta.imap import (
    INSTALL_HINT,
    DovecotService,
    ImapUnavailable,
    OwnedMaildirStore,
    certificate_files,
    dovecot_available,
    mail_owner,
)
from coldrelay.mta.imap import dovecot as dovecot_module
from coldrelay.mta.imap.conf import DovecotLayout, RunAs, render_config
from coldrelay.mta.imap.dovecot import live_group_members
from coldrelay.mta.imap.passdb import passdb_line, passdb_text, write_passdb
from coldrelay.mta.tls import ensure_certificate
from mx_support import MX_HOSTNAME, LoopThread, RunningMX, make_database, stop
from scripted_smtp import free_port
from test_inbound_auth import message, signed

PASSWORD = "a long enough password"  # every mailbox mx_support.make_database creates has it


class ImapFrom(imaplib.IMAP4_SSL):
    """IMAP4_SSL from a chosen loopback source address.

    Dovecot delays every login from an address after a failed one (its per-IP auth penalty, up to
    15 s, reset by a success); each failing login here comes from an address of its own.
    """

    def __init__(self, source: str, *args: Any, **kwargs: Any) -> None:
        self.source = source
        super().__init__(*args, **kwargs)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        plain = socket.create_connection((self.host, self.port), timeout, source_address=(self.source, 0))
        wrapped: socket.socket = self.ssl_context.wrap_socket(plain, server_hostname=self.host)
        return wrapped


_sources = itertools.count(2)


def fresh_source() -> str:
    """A loopback address no login has come from yet in this run."""
    number = next(_sources)
    return f"127.0.{number // 250}.{number % 250 + 2}"


@dataclass
class Host:
    """A running MX and Dovecot over one data directory."""

    mx: RunningMX
    service: DovecotService
    engine: Engine
    settings: Settings
    cert_file: Path

    def imap(self, source: str = "127.0.0.1") -> imaplib.IMAP4_SSL:
        context = ssl.create_default_context(cafile=str(self.cert_file))
        return ImapFrom(source, "127.0.0.1", self.service.listen.port, ssl_context=context, timeout=10)

    def deliver(self, rcpt: str, content: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", self.mx.port, timeout=10) as client:
            client.sendmail("alice@inbound.test", [rcpt], content)


def settings_for(data_dir: Path, port: int) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir.parent / 'coldrelay.db'}",
        hostname="localhost",  # the self-signed certificate then names 127.0.0.1 too
        imap=ImapSettings(enabled=True, listen=ListenAddress("127.0.0.1", port)),
    )


def processes_of(config_file: Path, group: int | None) -> list[int]:
    """Live processes of a Dovecot instance: its master (found by its config file) and its process group."""
    found = set(live_group_members(group)) if group is not None else set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(config_file).encode() in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
        except OSError:
            continue
    return sorted(found)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, dns_server: object) -> Iterator[Host]:
    if not dovecot_available():
        pytest.fail(f"Dovecot is not installed ({dovecot_module.DOVECOT_BINARY} missing). {INSTALL_HINT}")
    tmp_path = tmp_path_factory.mktemp("imap")
    make_database(tmp_path)
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)  # as ensure_data_dir makes it: Dovecot must cope with an owner-only data directory
    engine = create_engine(f"sqlite:///{tmp_path / 'coldrelay.db'}")
    settings = settings_for(data_dir, free_port())
    ensure_certificate(data_dir, settings.hostname)
    cert_file, key_file = certificate_files(settings)
    loop = LoopThread()
    resolver = Resolver([dns_server.address], timeout=1.0, retries=1)  # type: ignore[attr-defined]
    server = loop.run(
        start_mx(
            "127.0.0.1",
            0,
            DatabaseDirectory(session_factory(engine)),
            OwnedMaildirStore(data_dir, mail_owner()),
            hostname=MX_HOSTNAME,
            pipeline=[AuthenticationStep(resolver, MX_HOSTNAME)],
        )
    )
    mx = RunningMX(loop, server, data_dir)
    service = DovecotService(settings, engine, cert_file=cert_file, key_file=key_file)
    try:
        loop.run(service.start())
        yield Host(mx, service, engine, settings, cert_file)
    finally:
        group = service.pid
        loop.run(service.stop())
        stop(mx)
        engine.dispose()
    assert processes_of(config_file_of(settings), group) == []


def config_file_of(settings: Settings) -> Path:
    return settings.data_dir / "dovecot" / "dovecot.conf"


def login_fails(host: Host, user: str, password: str) -> bool:
    client = host.imap(fresh_source())
    try:
        client.login(user, password)
    except imaplib.IMAP4.error as exc:
        assert "AUTHENTICATIONFAILED" in str(exc)
        return True
    finally:
        client.shutdown()
    return False


def test_fetch_returns_the_delivered_message_with_our_trace_headers(host: Host) -> None:
    content = signed(message())
    host.deliver("bob@hosted.test", content)
    client = host.imap()
    try:
        assert client.login("Bob@Hosted.test", PASSWORD)[0] == "OK"  # the address in any case
        assert client.select("INBOX")[0] == "OK"
        typ, found = client.search(None, "SUBJECT", '"Q3 numbers"', "FROM", "alice@inbound.test")
        assert typ == "OK" and found[0].split() == [b"1"]
        assert client.search(None, "SUBJECT", '"no such subject"')[1][0] == b""
        typ, data = client.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK"
        assert isinstance(data[0], tuple)
        fetched = data[0][1]
    finally:
        client.logout()
    # Exactly what the client sent, below what the MX put on top: Return-Path, our Received, our results.
    assert fetched.endswith(content)
    trace = fetched[: -len(content)].decode()
    assert trace.startswith("Return-Path: <alice@inbound.test>\r\nReceived: from ")
    assert f"by {MX_HOSTNAME} (coldrelay)" in trace
    assert re.search(rf"Authentication-Results: {re.escape(MX_HOSTNAME)};.*spf=pass.*dkim=pass", trace, re.S)
    (stored,) = (host.mx.maildir("bob@hosted.test") / "cur").iterdir()  # SELECT moved it from new/ to cur/
    assert fetched == stored.read_bytes().replace(b"\n", b"\r\n")


def test_flags_and_move_land_in_the_maildir(host: Host) -> None:
    host.deliver("carol@second.test", message())
    client = host.imap()
    try:
        client.login("carol@second.test", PASSWORD)
        client.select("INBOX")
        typ, data = client.store("1", "+FLAGS", r"(\Seen \Flagged)")
        assert typ == "OK" and rb"\Seen" in data[0] and rb"\Flagged" in data[0]
        assert client.create("Replies")[0] == "OK"
        typ, data = client.uid("SEARCH", "ALL")
        (uid,) = data[0].split()
        assert client.uid("MOVE", uid.decode(), "Replies")[0] == "OK"
        assert client.select("INBOX")[1] == [b"0"]
        assert client.select("Replies")[1] == [b"1"]
        typ, data = client.fetch("1", "(FLAGS)")
        assert isinstance(data[0], bytes) and rb"\Seen" in data[0] and rb"\Flagged" in data[0]
        folders = b"\n".join(client.list()[1])  # type: ignore[arg-type]
        for special in (rb"\Sent", rb"\Trash", rb"\Junk", rb"\Drafts"):  # made and subscribed at first login
            assert special in folders
    finally:
        client.logout()
    maildir = host.mx.maildir("carol@second.test")
    (moved,) = (maildir / ".Replies" / "cur").iterdir()
    assert moved.name.endswith(":2,FS")  # Maildir flags: Flagged, Seen
    assert list((maildir / "new").iterdir()) == [] and list((maildir / "cur").iterdir()) == []
    owner = mail_owner()
    assert (moved.stat().st_uid, moved.stat().st_gid) == (owner.uid, owner.gid)


def test_wrong_password_unknown_and_disabled_mailboxes_cannot_log_in(host: Host) -> None:
    attempts = [
        ("alice@hosted.test", "not the password"),
        ("nobody@hosted.test", PASSWORD),
        ("gone@hosted.test", PASSWORD),  # disabled in the database from the start
    ]
    with ThreadPoolExecutor(len(attempts)) as pool:  # each failure costs Dovecot's 2 s failure delay: run them together
        assert list(pool.map(lambda attempt: login_fails(host, *attempt), attempts)) == [True, True, True]


def test_refresh_accounts_follows_disabled_and_new_mailboxes(host: Host) -> None:
    client = host.imap()
    assert client.login("alice@hosted.test", PASSWORD)[0] == "OK"
    client.logout()
    sessions = session_factory(host.engine)
    with sessions() as session:
        session.scalars(select(Mailbox).where(Mailbox.address == "alice@hosted.test")).one().enabled = False
        create_mailbox(session, "ellen@hosted.test", PASSWORD)  # as long as alice's: the file keeps its size
        session.commit()
    assert login_fails(host, "ellen@hosted.test", PASSWORD)  # not before the refresh
    passdb = host.settings.data_dir / "dovecot" / "passwd"
    before = passdb.stat()
    assert host.mx.loop.run(host.service.refresh_accounts()) == 3  # bob, carol, ellen
    after = passdb.stat()
    assert after.st_size == before.st_size and int(after.st_mtime) > int(before.st_mtime)
    assert login_fails(host, "alice@hosted.test", PASSWORD)
    client = host.imap()
    assert client.login("ellen@hosted.test", PASSWORD)[0] == "OK"
    assert client.select("INBOX") == ("OK", [b"0"])  # a mailbox that never got mail: Dovecot makes its Maildir
    client.logout()
    assert (host.mx.maildir("ellen@hosted.test") / "cur").is_dir()
    assert host.mx.loop.run(host.service.refresh_accounts()) == 3
    assert passdb.stat().st_mtime == after.st_mtime  # unchanged accounts: the file is left alone


def test_only_implicit_tls_with_a_password_is_served(host: Host) -> None:
    with socket.create_connection(("127.0.0.1", host.service.listen.port), timeout=5) as raw:
        raw.sendall(b"a1 CAPABILITY\r\n")  # plain text on the TLS port: no IMAP answer comes back
        raw.settimeout(2)
        try:
            reply = raw.recv(4096)
        except (TimeoutError, ConnectionResetError):
            reply = b""
        assert b"IMAP4" not in reply
    client = host.imap()
    try:
        assert b"AUTH=PLAIN" in client.welcome and b"coldrelay IMAP ready." in client.welcome
    finally:
        client.shutdown()


def test_files_are_private_and_under_the_data_directory(host: Host) -> None:
    root = host.settings.data_dir / "dovecot"
    assert (root / "passwd").stat().st_mode & 0o077 == 0
    assert (root / "dovecot.conf").stat().st_mode & 0o077 == 0
    assert (root / "run" / "master.pid").is_file()
    log = (root / "dovecot.log").read_text()
    assert "starting up for imap" in log
    conf = (root / "dovecot.conf").read_text()
    assert "listen = 127.0.0.1\n" in conf and "ssl = required\n" in conf and "protocols = imap\n" in conf


def test_stop_ends_every_process_and_removes_the_pid_file(host: Host, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    engine = host.engine  # a second instance over the same accounts, in a data directory of its own
    settings = settings_for(data_dir, free_port())
    ensure_certificate(data_dir, settings.hostname)
    cert_file, key_file = certificate_files(settings)
    service = DovecotService(settings, engine, cert_file=cert_file, key_file=key_file)
    loop = LoopThread()
    try:
        loop.run(service.start())
        group = service.pid
        assert group is not None
        client = imaplib.IMAP4_SSL(
            "127.0.0.1", settings.imap.listen.port, ssl_context=ssl.create_default_context(cafile=str(cert_file))
        )
        client.login("carol@second.test", PASSWORD)
        client.select("INBOX")  # an open session: a login and an imap process besides the master's helpers
        assert len(processes_of(config_file_of(settings), group)) >= 3
        loop.run(service.stop())
        client.shutdown()
        assert processes_of(config_file_of(settings), group) == []
        assert not (data_dir / "dovecot" / "run" / "master.pid").exists()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", settings.imap.listen.port), timeout=2).close()
    finally:
        loop.run(service.stop())
        loop.close()


def test_a_busy_port_is_a_clear_error_and_leaves_nothing_running(host: Host, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    engine = host.engine
    with socket.create_server(("127.0.0.1", 0)) as taken:
        settings = settings_for(data_dir, taken.getsockname()[1])
        ensure_certificate(data_dir, settings.hostname)
        cert_file, key_file = certificate_files(settings)
        service = DovecotService(settings, engine, cert_file=cert_file, key_file=key_file)
        loop = LoopThread()
        try:
            with pytest.raises(ImapUnavailable, match="Address already in use"):
                loop.run(service.start())
            assert service.pid is None
            assert processes_of(config_file_of(settings), None) == []
        finally:
            loop.close()


def test_without_dovecot_start_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The binary path is pointed elsewhere (the one stand-in here): a real Dovecot is installed on this host.
    monkeypatch.setattr(dovecot_module, "DOVECOT_BINARY", tmp_path / "no-dovecot")
    assert not dovecot_available()
    settings = settings_for(tmp_path / "data", free_port())
    service = DovecotService(settings, create_engine("sqlite://"), cert_file=tmp_path / "c", key_file=tmp_path / "k")
    loop = LoopThread()
    try:
        with pytest.raises(ImapUnavailable, match="apt-get install dovecot-imapd"):
            loop.run(service.start())
    finally:
        loop.close()


def test_missing_certificate_is_a_clear_error(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data", free_port())
    service = DovecotService(settings, create_engine("sqlite://"), cert_file=tmp_path / "c.pem", key_file=tmp_path / "k.pem")
    loop = LoopThread()
    try:
        with pytest.raises(ImapUnavailable, match=r"c\.pem for IMAP does not exist"):
            loop.run(service.start())
    finally:
        loop.close()


def test_owned_store_hands_new_mail_to_the_mail_user(host: Host) -> None:
    host.deliver("bob@hosted.test", message(body=b"second\r\n"))
    owner = mail_owner()
    maildir = host.mx.maildir("bob@hosted.test")
    for path in (maildir.parent.parent, maildir.parent, maildir, *maildir.iterdir(), *(maildir / "new").iterdir()):
        assert (path.stat().st_uid, path.stat().st_gid) == (owner.uid, owner.gid), path
    if os.geteuid() == 0:
        assert owner.uid != 0  # Dovecot never opens mail as root


@pytest.mark.skipif(os.geteuid() != 0, reason="as a normal user every test above already runs Dovecot unprivileged")
def test_as_a_normal_user_every_dovecot_process_runs_as_that_user() -> None:
    """The developer-machine path, from root: the service in a child process as ``nobody``."""
    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="coldrelay-imap-"))  # /tmp itself: pytest's own directory is root-only
    try:
        base.chmod(0o755)
        data_dir = base / "data"
        data_dir.mkdir(mode=0o700)
        os.chown(data_dir, nobody.pw_uid, nobody.pw_gid)
        command = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
        command += [
            sys.executable,
            str(Path(__file__).parent / "helpers" / "imap_nonroot_child.py"),
            str(data_dir),
            str(free_port()),
        ]
        environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "HOME": str(base)}
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment, cwd=base)
        assert result.returncode == 0, result.stderr[-2000:]
        lines = result.stdout.splitlines()
        assert [line for line in lines if not line.startswith("group")] == ["login OK", "select OK", "create OK", "stopped"]
        group = int(next(line for line in lines if line.startswith("group")).split()[1])
        assert live_group_members(group) == []
        conf = (data_dir / "dovecot" / "dovecot.conf").read_text()
        assert "default_login_user = nobody\n" in conf and "mail_chroot" not in conf
        maildir = data_dir / "mail" / "nonroot.test" / "dev" / "Maildir"
        assert (maildir / ".Replies").is_dir() and maildir.stat().st_uid == nobody.pw_uid
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_password_file_lines_refuse_what_dovecot_could_misread() -> None:
    argon = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g"
    assert passdb_line("bob@hosted.test", argon) == f"bob@hosted.test:{{ARGON2ID}}{argon}"
    assert passdb_line("bob:x@hosted.test", argon) is None  # would split the passwd-file fields
    assert passdb_line("../x@hosted.test", argon) is None  # names no Maildir
    assert passdb_line("bob@hosted.test", "$2b$12$bcryptbcryptbcrypt") is None  # a scheme we never store
    text, count = passdb_text([("carol@second.test", argon), ("bad:one@x.test", argon), ("bob@hosted.test", argon)])
    assert count == 2 and text.splitlines()[1:] == [
        f"bob@hosted.test:{{ARGON2ID}}{argon}",
        f"carol@second.test:{{ARGON2ID}}{argon}",
    ]


def test_a_rewrite_within_the_same_second_still_moves_the_mtime(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    assert write_passdb(path, "a@x.test:{ARGON2ID}$argon2id$1\n")
    first = int(path.stat().st_mtime)
    assert write_passdb(path, "b@x.test:{ARGON2ID}$argon2id$1\n")  # same size, same second
    assert int(path.stat().st_mtime) > first  # Dovecot compares whole seconds and size
    assert not write_passdb(path, "b@x.test:{ARGON2ID}$argon2id$1\n")
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("as_root", [True, False])
def test_both_configurations_parse_with_doveconf(tmp_path: Path, as_root: bool) -> None:
    run_as = RunAs(as_root, "dovenull", "dovecot", "dovecot", mail_uid=8, mail_gid=8)
    if not as_root:
        me = pwd.getpwuid(os.geteuid()).pw_name
        run_as = RunAs(False, me, me, me, mail_uid=os.geteuid(), mail_gid=os.getegid())
    layout = DovecotLayout(tmp_path / "data")
    cert = tmp_path / "cert.pem"
    conf = render_config(layout, ListenAddress("127.0.0.1", 2993), run_as, cert_file=cert, key_file=cert, dh_file=None)
    for line in ("ssl = required", "disable_plaintext_auth = yes", "protocols = imap", "mail_location = maildir:~/Maildir"):
        assert f"\n{line}\n" in conf
    assert ("mail_chroot = " in conf) is as_root and ("  chroot =\n" in conf) is not as_root
    path = tmp_path / "dovecot.conf"
    path.write_text(conf)
    cert.write_text("")  # doveconf reads <file values; an empty one is enough to parse
    result = subprocess.run(["doveconf", "-c", str(path), "-n"], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr


def test_paths_dovecot_would_misread_are_refused(tmp_path: Path) -> None:
    run_as = RunAs(False, "me", "me", "me", mail_uid=1000, mail_gid=1000)
    for data_dir in (tmp_path / "my data", tmp_path / "100%", tmp_path / ("x" * 90)):
        with pytest.raises(ImapUnavailable, match=r"data directory|path"):
            render_config(
                DovecotLayout(data_dir),
                ListenAddress("127.0.0.1", 1),
                run_as,
                cert_file=tmp_path,
                key_file=tmp_path,
                dh_file=None,
            )
