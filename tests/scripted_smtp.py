"""SMTP peers on 127.0.0.1 for the probe and relay tests: real aiosmtpd servers, and scripted ones
for what aiosmtpd will not do (garbage, silence, hang-ups, odd replies)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aiosmtpd.controller import Controller

CLOSE = "close"
"""Hang up."""
SILENT = "silent"
"""Say nothing until the client gives up."""
Step = bytes | str
Action = Step | tuple[Step, ...]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def smtpd(handler: object | None = None, **kwargs: Any) -> Iterator[int]:
    """A real aiosmtpd server on 127.0.0.1; yields its port."""
    port = free_port()
    kwargs.setdefault("server_hostname", "mx.plain.test")
    controller = Controller(handler or object(), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def _verb(line: str) -> str:
    return line.split(" ", 1)[0].split(":", 1)[0].strip().upper()


class ScriptedServer:
    """A fake SMTP peer on 127.0.0.1.

    ``respond`` is either a mapping from verb to action (unknown verbs get 502)
    or a function from the whole command line to an action; an action is bytes
    to send, CLOSE, SILENT, or a tuple of those. QUIT always gets 221.
    """

    def __init__(self, banner: Action, respond: Mapping[str, Action] | Callable[[str], Action] | None = None) -> None:
        self.banner = banner
        if respond is None or isinstance(respond, Mapping):
            table = dict(respond or {})
            self.respond: Callable[[str], Action] = lambda line: table.get(_verb(line), b"502 5.5.2 command not recognised\r\n")
        else:
            self.respond = respond
        self.port = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop)
        self._server = started.result(5)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if not await self._act(self.banner, reader, writer):
                return
            while line := await reader.readline():
                text = line.decode(errors="replace").rstrip("\r\n")
                if _verb(text) == "QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    return
                if not await self._act(self.respond(text), reader, writer):
                    return
        except ConnectionError:
            pass
        finally:
            writer.close()

    @staticmethod
    async def _act(action: Action, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        for step in action if isinstance(action, tuple) else (action,):
            if step == CLOSE:
                return False
            if step == SILENT:
                await reader.read()  # until the client gives up
                return False
            assert isinstance(step, bytes)
            writer.write(step)
            await writer.drain()
        return True
