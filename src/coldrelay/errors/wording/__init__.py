"""Extra wording rules, one module per family of mail software.

Each module here has ``RULES: tuple[tuple[Reason, str], ...]``: regular
expressions (case-insensitive) for the phrases that software uses, each with
the reason it states. ``phrases.py`` folds them into its own rules, at the
priority its table gives their reason, so a qmail phrase and a generic phrase
for the same reason rank the same.
"""

from __future__ import annotations

import importlib
import pkgutil

from coldrelay.errors.reasons import Reason


def extra_rules() -> list[tuple[Reason, str]]:
    """Every rule of every module in this package, in module-name order."""
    rules: list[tuple[Reason, str]] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        rules.extend(getattr(module, "RULES", ()))
    return rules
