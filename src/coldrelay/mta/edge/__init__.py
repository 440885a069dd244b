"""The SMTP listeners: the MX (inbound mail for hosted mailboxes) with its recipient policy, and submission."""

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
from coldrelay.mta.edge.submission import (
    AuthenticatedMailbox,
    DatabaseAccounts,
    SubmissionAccounts,
    SubmissionGuards,
    SubmissionHandler,
    SubmissionLimits,
    SubmissionServer,
    SubmissionSession,
    start_submission,
)

__all__ = [
    "AuthenticatedMailbox",
    "ConnectionGate",
    "DatabaseAccounts",
    "DatabaseDirectory",
    "MXHandler",
    "MXLimits",
    "MXServer",
    "MXSession",
    "MailboxDirectory",
    "MailboxState",
    "RecipientDecision",
    "RecipientPolicy",
    "SubmissionAccounts",
    "SubmissionGuards",
    "SubmissionHandler",
    "SubmissionLimits",
    "SubmissionServer",
    "SubmissionSession",
    "parse_plain_address",
    "split_forward_path",
    "start_mx",
    "start_submission",
]
