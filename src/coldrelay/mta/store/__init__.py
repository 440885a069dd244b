"""Local mailboxes: Maildir delivery for mail that arrives at hosted domains."""

from coldrelay.mta.store.maildir import MaildirStore, deliver_to_maildir, maildir_path
from coldrelay.mta.store.message import InboundMessage, MessageStore

__all__ = ["InboundMessage", "MaildirStore", "MessageStore", "deliver_to_maildir", "maildir_path"]
