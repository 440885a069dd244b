"""The web server ``coldrelay serve`` runs: uvicorn's, with signal handling that lets serve clean up."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

import uvicorn


class WebServer(uvicorn.Server):
    """uvicorn's server minus one habit: after a graceful stop on SIGTERM it raises the signal again,
    which ends the process before serve's own clean-up (Dovecot, delivery workers, listeners, the
    queue's pending commits) has run, and leaves a Dovecot behind."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.handle_exit, signum, None)
        try:
            yield
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
