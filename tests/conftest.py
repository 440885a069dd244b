"""Shared fixtures: the shipped knowledge base, a live web server on loopback, the loopback DNS server,
and `coldrelay serve` started as a real process on free ports with its own data directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn

from coldrelay.errors import KnowledgeBase, default_knowledge_base
from coldrelay.web import create_app


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    return default_knowledge_base()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def live_server() -> Iterator[str]:
    """The real app served by uvicorn on 127.0.0.1, for the browser tests."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the web app did not start within 15 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def dns_server() -> Iterator[object]:
    """The loopback authoritative DNS server with every zone in tests/zones (see tests/dns_server.py)."""
    from dns_server import LoopbackDNS

    server = LoopbackDNS().start()
    yield server
    server.stop()


@pytest.fixture
def resolver(dns_server: object) -> object:
    """A fresh coldrelay Resolver pointed at the loopback server (short timeout: timeouts are tested)."""
    from coldrelay.dns import Resolver

    return Resolver([dns_server.address], timeout=1.0, retries=1)  # type: ignore[attr-defined]


# --- `coldrelay serve` as a process ---------------------------------------------------------------------------------

COLDRELAY = Path(sys.executable).with_name("coldrelay")
MAILBOX = "anna@hosted.test"  # the mailbox every serve_host has, with this password
PASSWORD = "long enough secret"


def free_port() -> int:
    return _free_port()


def serve_data_dir(tmp_path: Path, web: int, mx: int, submission: int | None = None, submissions: int | None = None) -> Path:
    """A data directory whose coldrelay.toml puts every listener on 127.0.0.1 at the given (or free) ports."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "coldrelay.toml").write_text(
        f'hostname = "box.hosted.test"\n[web]\nlisten = "127.0.0.1:{web}"\n[smtp]\nmx_listen = "127.0.0.1:{mx}"\n'
        f'submission_listen = "127.0.0.1:{submission or _free_port()}"\n'
        f'submissions_listen = "127.0.0.1:{submissions or _free_port()}"\n'
        f'[imap]\nlisten = "127.0.0.1:{_free_port()}"\n',
        encoding="utf-8",
    )
    return data


def run_coldrelay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(COLDRELAY), *args], capture_output=True, text=True, timeout=60, check=False)


def wait_for_web(url: str, timeout: float = 20) -> None:
    """Until the web app answers ``url`` with the SMTP error reference."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                assert response.status == 200
                assert "SMTP error reference" in response.read().decode()
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@dataclass
class Served:
    """One running `coldrelay serve`; ``output`` collects what it prints after the banner."""

    data: Path
    web: int
    mx: int
    submission: int
    submissions: int
    banner: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None


@dataclass
class ServeHost:
    """A data directory (domain hosted.test, mailbox anna@hosted.test) and free ports; ``start`` runs serve on it."""

    data: Path
    web: int
    mx: int
    submission: int
    submissions: int
    nameserver: str
    started: list[Served] = field(default_factory=list)

    def start(self, *flags: str) -> Served:
        """Start `coldrelay serve` (with extra ``flags``) and return once its banner is printed and its web app answers."""
        process = subprocess.Popen(
            # Inbound SPF/DKIM/DMARC checks ask the loopback DNS server: no test query leaves the machine.
            [str(COLDRELAY), "--data-dir", str(self.data), "serve", "--nameserver", self.nameserver, *flags],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        served = Served(self.data, self.web, self.mx, self.submission, self.submissions, "", process)
        self.started.append(served)
        assert process.stdout is not None
        served.banner = "".join(process.stdout.readline() for _ in range(4))
        assert f"http://127.0.0.1:{self.web}" in served.banner and f"127.0.0.1:{self.mx}" in served.banner, served.banner
        # Keep reading what it prints, so a chatty server never blocks on a full pipe.
        served.reader = threading.Thread(target=served.output.extend, args=(process.stdout,), daemon=True)
        served.reader.start()
        wait_for_web(f"http://127.0.0.1:{self.web}/smtp-errors")
        return served

    def stop(self) -> None:
        """Terminate every serve this host started that still runs."""
        hung = []
        for served in self.started:
            process = served.process
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    hung.append(process.pid)
            if served.reader is not None:
                served.reader.join(timeout=5)
            if process.stdout is not None:
                process.stdout.close()
        assert not hung, f"coldrelay serve (pid {hung}) did not stop within 10 s of SIGTERM"


def prepare_serve_host(tmp_path: Path, nameserver: str) -> ServeHost:
    """Free ports and a data directory in ``tmp_path`` with hosted.test and anna@hosted.test, ready for serve."""
    web, mx, submission, submissions = _free_port(), _free_port(), _free_port(), _free_port()
    data = serve_data_dir(tmp_path, web, mx, submission, submissions)
    assert run_coldrelay("--data-dir", str(data), "domain", "add", "hosted.test").returncode == 0
    added = run_coldrelay("--data-dir", str(data), "mailbox", "add", MAILBOX, "--password", PASSWORD)
    assert added.returncode == 0, added.stderr
    return ServeHost(data, web, mx, submission, submissions, nameserver)


@pytest.fixture
def serve_host(tmp_path: Path, dns_server: object) -> Iterator[ServeHost]:
    """A data directory ready for `coldrelay serve`; every serve started on it is stopped after the test."""
    host = prepare_serve_host(tmp_path, dns_server.address)  # type: ignore[attr-defined]
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture
def served(serve_host: ServeHost) -> Served:
    """`coldrelay serve` running on ``serve_host``, its web app answering."""
    return serve_host.start()


POSTGRES_URL = os.environ.get("COLDRELAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
"""The machine's PostgreSQL (trust auth, database ``test``); each run makes and drops a database of its own."""


@pytest.fixture(scope="session")
def pg_run_database() -> Iterator[str]:
    """A database of its own for this test run on the machine's PostgreSQL, dropped at the end."""
    import uuid

    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from coldrelay.db import create_engine

    admin = create_engine(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    name = f"coldrelay_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and is not reachable at {POSTGRES_URL}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path, *, migrate: bool) -> Iterator[str]:
    """An empty database: a SQLite file in tmp_path, or a fresh schema in the run's PostgreSQL database.

    The schema is chosen through ``search_path`` in the URL, so child processes given the URL land
    in it too; it is dropped afterwards. ``migrate`` brings it to the current schema first.
    """
    import uuid

    from sqlalchemy import text

    from coldrelay.db import create_engine, upgrade_database

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/coldrelay.db"
        if migrate:
            upgrade_database(url)
        yield url
        return
    run_url: str = request.getfixturevalue("pg_run_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(run_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{run_url}?options=-csearch_path%3D{schema}"
    try:
        if migrate:
            upgrade_database(url)
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
