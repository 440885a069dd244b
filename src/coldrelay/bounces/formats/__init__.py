"""One module per bounce layout, tried in the order of their ``PRIORITY``.

Each module has ``NAME``, ``PRIORITY`` (lower runs first) and
``parse(bounce) -> list[Finding] | None``; None means "not my layout". Layouts
that carry their own clues (a vendor's subject, a product header) use 10-40,
the standard DSN reader 50, auto-replies 60 and the plain-text fallback 90.
A new layout is one new file here; nothing else needs to change.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def _load_formats() -> tuple[ModuleType, ...]:
    modules = [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)]
    return tuple(sorted(modules, key=lambda module: (getattr(module, "PRIORITY", 50), module.__name__)))


FORMATS: tuple[ModuleType, ...] = _load_formats()
