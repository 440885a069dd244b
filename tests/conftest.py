"""Shared fixtures: the shipped knowledge base and a live web server on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

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
