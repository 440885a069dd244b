"""SMTP checks of one server: the probe (banner, EHLO, STARTTLS, certificate, timings) and the open-relay test.

Both speak SMTP over asyncio streams, never raise on a server's behaviour, and
return a result object with the structured data (``to_dict()``) and the findings
in the report's ``Section`` form (``smtp`` for the probe, ``relay`` for the relay test).
"""

from coldrelay.smtpcheck.certificate import CertificateInfo, host_matches, parse_certificate
from coldrelay.smtpcheck.probe import ProbeResult, Timings, TLSInfo, probe_smtp
from coldrelay.smtpcheck.relay import RELAY_TRICKS, RelayAttempt, RelayOutcome, RelayTestResult, RelayTrick, relay_test
from coldrelay.smtpcheck.wire import FailureKind, SessionFailure, SMTPReply, split_host_port

__all__ = [
    "RELAY_TRICKS",
    "CertificateInfo",
    "FailureKind",
    "ProbeResult",
    "RelayAttempt",
    "RelayOutcome",
    "RelayTestResult",
    "RelayTrick",
    "SMTPReply",
    "SessionFailure",
    "TLSInfo",
    "Timings",
    "host_matches",
    "parse_certificate",
    "probe_smtp",
    "relay_test",
    "split_host_port",
]
