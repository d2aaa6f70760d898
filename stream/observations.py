"""What the processor reports about its work, for metrics and logs.

The processor stays free of any metrics or logging library: it hands these plain records to
the hooks the worker installs (``StreamProcessor.on_decision`` / ``on_dead_letter``), and
:mod:`stream.metrics` and :mod:`stream.worker_log` turn them into series and lines.
"""

from __future__ import annotations

from dataclasses import dataclass

UNKNOWN_SITE = "unknown"
"""The ``site`` of a record whose key names no site this worker serves (or has no key).

Never the key itself: a metric label per hostile key would grow without bound."""


@dataclass(frozen=True)
class DecisionObserved:
    """What a decision looked like, for metrics and the decision log."""

    site_id: str
    interval_index: int
    total_ms: float
    solver_status: str
    policy_error: str | None
    policy_name: str
    policy_version: str
    role: str = "served"
    """``served`` (published on the allocation topic) or ``shadow`` (the shadow topic)."""
    day: str = ""
    """The day's date (``YYYY-MM-DD``) of the site's open day."""
    route_revision: int = 0
    fallback_reason: str | None = None
    """Why the engine's fallback policy decided instead (None: the policy itself decided)."""
    fallback_from: str | None = None
    """``name@version`` of the policy the fallback stood in for."""
    trigger: str = ""
    """What closed the interval before it (``interval_closed``, ``stalled``, ``day_started``...)."""

    @property
    def policy(self) -> str:
        return f"{self.policy_name}@{self.policy_version}"


@dataclass(frozen=True)
class DeadLetterObserved:
    """One dead-lettered input record: where it came from and why."""

    site_id: str
    """The served site its key names, else :data:`UNKNOWN_SITE`."""
    topic: str
    partition: int
    offset: int
    kind: str
    """The reason's kind (``stream.deadletter.reason_kind``): what metrics count by."""
    reason: str


def error_kind(error: str | None) -> str:
    """A bounded label for a policy error (``"TypeName: message"`` -> ``TypeName``)."""
    if not error:
        return "none"
    head, sep, _ = error.partition(":")
    return head if sep and head.isidentifier() else "other"


__all__ = ["UNKNOWN_SITE", "DeadLetterObserved", "DecisionObserved", "error_kind"]
