"""MTA-STS policy files over real HTTPS on 127.0.0.1 (trustme certificates), for the delivery tests.

Serves ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` for the domains it is given, chosen by the
Host header; the answers can be changed while it runs, and every request is recorded.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import trustme

from coldrelay.dns.mtasts import PolicyFetcher


def policy_text(mode: str, *mx: str, max_age: int = 604800) -> bytes:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {pattern}" for pattern in mx), f"max_age: {max_age}"]
    return ("\r\n".join(lines) + "\r\n").encode()


@dataclass
class PolicyReply:
    body: bytes
    status: int = 200
    content_type: str = "text/plain"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        self.server.requests.append(host)
        reply = self.server.replies.get(host.removeprefix("mta-sts.")) if self.path == "/.well-known/mta-sts.txt" else None
        reply = reply or PolicyReply(b"no such policy", status=404)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.replies: dict[str, PolicyReply] = {}
        self.requests: list[str] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class PolicyServer:
    """``replies`` maps a domain to its policy answer; ``requests`` lists the Host of every request."""

    def __init__(self, ca: trustme.CA, replies: dict[str, PolicyReply]) -> None:
        self.ca = ca
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*(f"mta-sts.{domain}" for domain in replies)).configure_cert(context)
        self._server = _Server(context)
        self._server.replies.update(replies)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def replies(self) -> dict[str, PolicyReply]:
        return self._server.replies

    @property
    def requests(self) -> list[str]:
        return self._server.requests

    def fetcher(self, timeout: float = 2.0) -> PolicyFetcher:
        """A fetcher that trusts this server's CA and connects to its port."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return PolicyFetcher(context, port=self.port, timeout=timeout)

    def __enter__(self) -> PolicyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
