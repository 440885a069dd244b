"""Checks the MX runs on each accepted message before storing it: steps of a pipeline, not branches in the listener.

``pipeline``: the step type and ``run_pipeline``. ``authentication``: SPF, DKIM, DMARC and the
``Authentication-Results`` field. ``bounces``: bounce parsing and linking to the queued message.
"""

from coldrelay.mta.checks.authentication import (
    AuthenticationResult,
    AuthenticationStep,
    Disposition,
    DkimCheck,
    DmarcCheck,
    SpfCheck,
    Verdict,
    authenticate,
    authentication_results_header,
)
from coldrelay.mta.checks.bounces import BounceLink, BounceStep, MessageLocator, QueueHeaderLocator
from coldrelay.mta.checks.pipeline import PipelineStep, run_pipeline

__all__ = [
    "AuthenticationResult",
    "AuthenticationStep",
    "BounceLink",
    "BounceStep",
    "Disposition",
    "DkimCheck",
    "DmarcCheck",
    "MessageLocator",
    "PipelineStep",
    "QueueHeaderLocator",
    "SpfCheck",
    "Verdict",
    "authenticate",
    "authentication_results_header",
    "run_pipeline",
]
