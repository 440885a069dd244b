"""IMAP for hosted mailboxes: a private Dovecot over the MX's Maildirs, started by ``coldrelay serve``."""

from coldrelay.mta.imap.dovecot import DovecotService, certificate_files, dovecot_available, mail_owner
from coldrelay.mta.imap.errors import INSTALL_HINT, ImapUnavailable
from coldrelay.mta.imap.mailstore import MailOwner, OwnedMaildirStore

__all__ = [
    "INSTALL_HINT",
    "DovecotService",
    "ImapUnavailable",
    "MailOwner",
    "OwnedMaildirStore",
    "certificate_files",
    "dovecot_available",
    "mail_owner",
]
