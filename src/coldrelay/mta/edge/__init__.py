"""The SMTP listeners; for now the MX (inbound mail for hosted mailboxes) and its recipient policy."""

from coldrelay.mta.edge.mx import ConnectionGate, MXHandler, MXLimits, MXServer, MXSession, start_mx
from coldrelay.mta.edge.policy import (
    DatabaseDirectory,
    MailboxDirectory,
    MailboxState,
    RecipientDecision,
    RecipientPolicy,
    parse_plain_address,
    split_forward_path,
)

__all__ = [
    "ConnectionGate",
    "DatabaseDirectory",
    "MXHandler",
    "MXLimits",
    "MXServer",
    "MXSession",
    "MailboxDirectory",
    "MailboxState",
    "RecipientDecision",
    "RecipientPolicy",
    "parse_plain_address",
    "split_forward_path",
    "start_mx",
]
