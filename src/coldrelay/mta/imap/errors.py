"""The one error the IMAP service raises to ``coldrelay serve``: its message is meant for the operator."""

from __future__ import annotations

INSTALL_HINT = (
    "IMAP needs Dovecot: install it with `apt-get install dovecot-imapd` (Debian/Ubuntu), or set [imap] enabled = false"
)


class ImapUnavailable(Exception):
    """Dovecot is not installed, or it could not be configured or started; the message says what to do."""
