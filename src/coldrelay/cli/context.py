"""What the root ``coldrelay`` callback hands to every command: the data directory, and lazily
the settings and the database.

Lazy, because ``coldrelay explain`` must work with no data directory and even with a broken
``coldrelay.toml``; only commands that need settings load them, once, and report a bad file
as a clear error.

Exit codes of the admin commands: 2 when what was typed or written is invalid (an address, a
domain name, the config file), 1 when the request clashes with what exists (a duplicate, an
unknown domain) or the database cannot be reached.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from coldrelay.config import ConfigError, Settings, default_data_dir, ensure_data_dir, load_settings

EXIT_CONFLICT = 1
EXIT_INVALID = 2

err_console = Console(stderr=True)


@dataclass
class AppContext:
    """The state of one ``coldrelay`` invocation, stored in Typer's ``ctx.obj``."""

    data_dir: Path
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        """The settings from ``<data-dir>/coldrelay.toml``, loaded on first use; exits 2 on a broken file."""
        if self._settings is None:
            try:
                self._settings = load_settings(self.data_dir)
            except ConfigError as exc:
                fail(f"Configuration error: {exc}", EXIT_INVALID)
        return self._settings

    def apply_flags(self, overrides: dict[str, object]) -> Settings:
        """Settings from the file with command-line flags (keyed ``section.key``) on top; exits 2 on a bad value."""
        try:
            self._settings = load_settings(self.data_dir, overrides)
        except ConfigError as exc:
            fail(f"Configuration error: {exc}", EXIT_INVALID)
        return self._settings

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction on a database brought up to date; committed when the block ends.

        The data directory is created here (0700) on first use, and migrations run on every
        command: cheap when current, and a fresh data directory just works.
        """
        from coldrelay.db import DatabaseURLError, create_engine, session_factory, upgrade_database

        settings = self.settings()
        try:
            ensure_data_dir(settings.data_dir)
            engine = create_engine(settings.database_url)
        except (ConfigError, DatabaseURLError) as exc:
            fail(f"Configuration error: {exc} (database_url in {settings.config_path})", EXIT_INVALID)
        try:
            upgrade_database(engine)
            with session_factory(engine).begin() as session:
                yield session
        except SQLAlchemyError as exc:
            fail(f"Database error ({engine.url.render_as_string(hide_password=True)}): {exc.__class__.__name__}: {exc}")
        finally:
            engine.dispose()


def app_context(ctx: typer.Context) -> AppContext:
    """The invocation's context; a command run without the root callback (a test) gets the defaults."""
    root = ctx.find_root()
    if not isinstance(root.obj, AppContext):
        root.obj = AppContext(default_data_dir())
    return root.obj


def fail(message: str, code: int = EXIT_CONFLICT) -> NoReturn:
    """Print ``message`` to stderr and stop with ``code``; never a traceback."""
    err_console.print(f"[red]{escape(message)}[/red]", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
