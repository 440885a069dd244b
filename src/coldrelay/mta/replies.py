"""Every SMTP reply the mail host's listeners send, in one place, so codes and wording are reviewed together.

Each reply carries its RFC 3463 enhanced status code. Greetings and EHLO/HELO answers are the only
replies without one (RFC 2034 section 3 leaves them out); ``Reply.enhanced`` is then empty.

aiosmtpd answers some commands itself (NOOP, RSET, QUIT, HELP, malformed MAIL, ...) with literals of
its own that carry no enhanced code; ``library_reply`` maps those onto ours, so the wire only ever
shows the replies below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: basic code, enhanced code (``""`` where RFC 2034 forbids one) and text."""

    code: int
    enhanced: str
    text: str

    def __str__(self) -> str:
        """The wire form without the CRLF: ``550 5.7.1 Unable to relay``."""
        return f"{self.code} {self.enhanced} {self.text}" if self.enhanced else f"{self.code} {self.text}"

    @property
    def is_positive(self) -> bool:
        return self.code < 400

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    @property
    def is_transient(self) -> bool:
        return 400 <= self.code < 500


# --- positive ------------------------------------------------------------------------------------------------

OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
MESSAGE_ACCEPTED = Reply(250, "2.0.0", "Message accepted for delivery")
START_MAIL_INPUT = Reply(354, "", "End data with <CR><LF>.<CR><LF>")
BYE = Reply(221, "2.0.0", "Bye")
READY_TO_START_TLS = Reply(220, "2.0.0", "Ready to start TLS")
CANNOT_VRFY = Reply(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery")

# --- recipients (RCPT TO) ------------------------------------------------------------------------------------

UNABLE_TO_RELAY = Reply(550, "5.7.1", "Unable to relay")
USER_UNKNOWN = Reply(550, "5.1.1", "Recipient address rejected: user unknown")
MAILBOX_DISABLED = Reply(550, "5.2.1", "Recipient address rejected: mailbox disabled")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
RCPT_SYNTAX = Reply(501, "5.5.4", "Syntax: RCPT TO:<address>")
RCPT_PARAMETERS_UNSUPPORTED = Reply(555, "5.5.4", "RCPT TO parameters not recognized or not implemented")
LOOKUP_FAILED = Reply(451, "4.3.0", "Temporary recipient lookup failure, try again later")

# --- sender (MAIL FROM) --------------------------------------------------------------------------------------

MAIL_SYNTAX = Reply(501, "5.5.4", "Syntax: MAIL FROM:<address>")
SENDER_MALFORMED = Reply(553, "5.1.7", "Malformed sender address")
MAIL_PARAMETERS_UNSUPPORTED = Reply(555, "5.5.4", "MAIL FROM parameters not recognized or not implemented")
BODY_TYPE_UNSUPPORTED = Reply(501, "5.5.4", "BODY can only be one of 7BIT, 8BITMIME")
SMTPUTF8_UNSUPPORTED = Reply(555, "5.6.7", "SMTPUTF8 is not supported here")

# --- message data (DATA) -------------------------------------------------------------------------------------

MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed limit")
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long (RFC 5321 4.5.3.1.6)")
BARE_LF_REJECTED = Reply(550, "5.5.2", "Message refused: bare <LF> received; lines must end with <CR><LF> (RFC 5321 2.3.8)")
BARE_CR_REJECTED = Reply(550, "5.5.2", "Message refused: bare <CR> received; lines must end with <CR><LF> (RFC 5321 2.3.8)")
SMUGGLING_REJECTED = Reply(550, "5.5.2", "Message refused: end-of-data sequence other than <CR><LF>.<CR><LF> (SMTP smuggling)")
DATA_SYNTAX = Reply(501, "5.5.4", "Syntax: DATA")
STORE_FAILED = Reply(451, "4.3.0", "Temporary failure storing the message, try again later")

# --- sequence and syntax -------------------------------------------------------------------------------------

NEED_HELO = Reply(503, "5.5.1", "Send EHLO or HELO first")
NEED_MAIL = Reply(503, "5.5.1", "Need MAIL command first")
NEED_RCPT = Reply(503, "5.5.1", "Need RCPT command first")
NESTED_MAIL = Reply(503, "5.5.1", "Nested MAIL command")
SYNTAX_ERROR = Reply(500, "5.5.2", "Syntax error")
COMMAND_TOO_LONG = Reply(500, "5.5.2", "Command line too long")
COMMAND_NOT_RECOGNIZED = Reply(500, "5.5.1", "Command not recognized")
COMMAND_NOT_IMPLEMENTED = Reply(502, "5.5.1", "Command not implemented")
TOO_MANY_UNRECOGNIZED = Reply(502, "5.5.1", "Too many unrecognized commands, goodbye")
NON_ASCII_REFUSED = Reply(500, "5.5.2", "Non-ASCII command arguments are not accepted without SMTPUTF8")

# --- TLS -----------------------------------------------------------------------------------------------------

TLS_NOT_AVAILABLE = Reply(454, "4.7.0", "TLS not available")
TLS_REQUIRED = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
TLS_HANDSHAKE_INSECURE = Reply(554, "5.7.0", "Command refused due to lack of security")

# --- submission: authentication (RFC 4954) -------------------------------------------------------------------

AUTH_SUCCEEDED = Reply(235, "2.7.0", "Authentication successful")
AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_THROTTLED = Reply(454, "4.7.0", "Too many failed authentication attempts, try again later")
AUTH_TEMPORARY_FAILURE = Reply(454, "4.7.0", "Temporary authentication failure, try again later")
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
ALREADY_AUTHENTICATED = Reply(503, "5.5.1", "Already authenticated")
AUTH_MECHANISM_UNSUPPORTED = Reply(504, "5.5.4", "Unrecognized authentication type")
AUTH_SYNTAX = Reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]")
AUTH_ABORTED = Reply(501, "5.7.0", "Authentication aborted")
AUTH_BASE64_INVALID = Reply(501, "5.5.2", "Cannot decode base64")
AUTH_NEEDS_EHLO = Reply(503, "5.5.1", "Send EHLO first")

# --- submission: sender, limits, signing ---------------------------------------------------------------------

SENDER_NOT_OWNED = Reply(553, "5.7.1", "Sender address rejected: not owned by the authenticated user")
FROM_HEADER_NOT_OWNED = Reply(553, "5.7.1", "From header rejected: it must be the authenticated mailbox, and only it")
DAILY_CAP_REACHED = Reply(450, "4.7.1", "Daily sending cap reached for this mailbox, try again after 00:00 UTC")
SENDER_PAUSED = Reply(450, "4.7.1", "Sending from this mailbox is paused by the reputation guard; see the dashboard to resume it")
RECIPIENT_SYNTAX_INVALID = Reply(501, "5.1.3", "Bad recipient address syntax")
HEADER_MALFORMED = Reply(554, "5.6.0", "Message header malformed")
SIGNING_FAILED = Reply(451, "4.7.0", "Temporary failure signing the message (DKIM), try again later")

# --- connection ----------------------------------------------------------------------------------------------

TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections from your address, try again later")
SERVER_BUSY = Reply(421, "4.3.2", "Too many connections, try again later")
IDLE_TIMEOUT = Reply(421, "4.4.2", "Timeout exceeded, closing connection")
DATA_TIMEOUT = Reply(421, "4.4.2", "Message transfer took too long, closing connection")
LOCAL_ERROR = Reply(451, "4.3.0", "Local error in processing, try again later")


def too_many(command: str) -> Reply:
    """A command repeated beyond its per-session budget."""
    return Reply(421, "4.7.0", f"{command} sent too many times")


# aiosmtpd's own literals (1.4.6) -> ours. Exact strings first, then prefixes for those with variable text.
_LIBRARY_EXACT: dict[str, Reply] = {
    "250 OK": OK,
    "221 Bye": BYE,
    "220 Ready to start TLS": READY_TO_START_TLS,
    "252 Cannot VRFY user, but will accept message and attempt delivery": CANNOT_VRFY,
    "500 Command line too long": COMMAND_TOO_LONG,
    "500 Error: bad syntax": SYNTAX_ERROR,
    "500 Error: strict ASCII mode": NON_ASCII_REFUSED,
    "503 Error: send HELO first": NEED_HELO,
    "503 Error: need MAIL command": NEED_MAIL,
    "503 Error: need RCPT command": NEED_RCPT,
    "503 Error: nested MAIL command": NESTED_MAIL,
    "553 5.1.3 Error: malformed address": SENDER_MALFORMED,
    "552 Error: message size exceeds fixed maximum message size": MESSAGE_TOO_BIG,
    "555 MAIL FROM parameters not recognized or not implemented": MAIL_PARAMETERS_UNSUPPORTED,
    "501 Error: BODY can only be one of 7BIT, 8BITMIME": BODY_TYPE_UNSUPPORTED,
    "501 Error: SMTPUTF8 disabled": SMTPUTF8_UNSUPPORTED,
    "501 Error: SMTPUTF8 takes no arguments": SMTPUTF8_UNSUPPORTED,
    "502 EXPN not implemented": COMMAND_NOT_IMPLEMENTED,
    "454 TLS not available": TLS_NOT_AVAILABLE,
    "530 Must issue a STARTTLS command first": TLS_REQUIRED,
    "554 Command refused due to lack of security": TLS_HANDSHAKE_INSECURE,
    "502 5.5.1 Too many unrecognized commands, goodbye.": TOO_MANY_UNRECOGNIZED,
}
_LIBRARY_PREFIX: tuple[tuple[str, Reply], ...] = (
    ('500 Error: command "', COMMAND_NOT_RECOGNIZED),
    ("501 Syntax: MAIL", MAIL_SYNTAX),
)
# What a library reply not listed above gets, by basic code (the choices Postfix makes).
_ENHANCED_BY_CODE = {500: "5.5.2", 501: "5.5.4", 502: "5.5.1", 503: "5.5.1", 504: "5.5.4", 555: "5.5.4"}
_UNCODED = re.compile(r"([45]\d\d) (?!\d\.\d{1,3}\.\d{1,3}\b)(.*)", re.DOTALL)


def library_reply(status: str) -> str:
    """aiosmtpd's wording of a reply replaced by ours; other error replies get an enhanced code added.

    Continuation lines (``250-...``), greetings and EHLO/HELO answers pass through unchanged.
    """
    mapped = _LIBRARY_EXACT.get(status)
    if mapped is not None:
        return str(mapped)
    for prefix, reply in _LIBRARY_PREFIX:
        if status.startswith(prefix):
            return str(reply)
    match = _UNCODED.fullmatch(status)
    if match is None:
        return status
    code = int(match.group(1))
    enhanced = _ENHANCED_BY_CODE.get(code, f"{code // 100}.0.0")
    return f"{code} {enhanced} {match.group(2)}"
