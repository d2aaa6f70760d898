"""``policy rollback``: which earlier policy a site goes back to, and why that one.

A rollback serves the policy that served before the current one, with the shadows it had then
(a route is the whole route, so going back restores both). It never goes back to a version a
canary gate failed on the site, unless forced: right after a gate rolled a bad candidate
back, the "previous policy" of the route history is that candidate. Which versions failed is
read from the gate's own records (``chuteflow.canary.v1``) and from the route history (a
``rollback`` route whose reason is a failed gate follows the canary route it ended), so either
source alone is enough.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from contracts.control import CanaryCheck, PolicyRef, PolicyRoute
from contracts.topics import CANARY, message_key
from floor.errors import ChuteflowError
from stream.clients import KafkaClientConfig
from stream.routing import new_route
from stream.topic_reader import TopicReadError, read_to_end

GATE_FAILED = "canary gate failed"
"""How a gate's rollback route's reason starts (``rollout/canary.py``)."""


class NoRollback(ChuteflowError):
    """No earlier policy the site could go back to; one line."""


@dataclass(frozen=True)
class RollbackPlan:
    """The route to write and what it restores."""

    route: PolicyRoute
    restores: PolicyRoute | None
    """The earlier route whose policy and shadows come back (None: a canary's incumbent)."""
    skipped: tuple[PolicyRef, ...]
    """Earlier policies passed over because a gate failed them."""

    def describe(self) -> str:
        shadows = ", ".join(r.label for r in self.route.shadows) or "none"
        where = (
            "the canary's incumbent"
            if self.restores is None
            else f"as in revision {self.restores.revision} ({self.restores.action}, "
            f"{self.restores.event_time:%Y-%m-%d %H:%M:%S})"
        )
        skipped = (
            f"; skipped {', '.join(r.label for r in self.skipped)} (failed a canary gate)"
            if self.skipped
            else ""
        )
        return f"restores {self.route.serving.label} with shadows {shadows}, {where}{skipped}"


def failed_by_gate(history: list[PolicyRoute], checks: list[CanaryCheck]) -> set[str]:
    """Keys of the policies a canary gate failed on the site."""
    failed = {c.candidate.key for c in checks if c.outcome == "fail"}
    ordered = sorted(history, key=lambda r: r.revision)
    for before, after in itertools.pairwise(ordered):
        if (
            after.action == "rollback"
            and after.reason.startswith(GATE_FAILED)
            and before.canary is not None
        ):
            failed.add(before.serving.key)
    return failed


def plan_rollback(
    current: PolicyRoute,
    history: list[PolicyRoute],
    checks: list[CanaryCheck],
    reason: str,
    *,
    force: bool = False,
) -> RollbackPlan:
    """The rollback of ``current`` (the site's latest route) given its route ``history``."""
    from rollout.canary import rollback_route

    if current.canary is not None:
        return RollbackPlan(rollback_route(current, reason), None, ())
    failed = set() if force else failed_by_gate([*history, current], checks)
    skipped: list[PolicyRef] = []
    earlier = sorted(
        (r for r in history if r.revision < current.revision), key=lambda r: -r.revision
    )
    for route in earlier:
        if route.serving.key == current.serving.key:
            continue
        if route.serving.key in failed:
            if route.serving not in skipped:
                skipped.append(route.serving)
            continue
        shadows = [r for r in route.shadows if r.key != route.serving.key]
        back = new_route(
            current,
            current.site_id,
            serving=route.serving,
            shadows=shadows,
            fallback=route.fallback,
            deadline_ms=route.deadline_ms,
            action="rollback",
            reason=reason,
        )
        return RollbackPlan(back, route, tuple(skipped))
    note = (
        f" (passed over {', '.join(r.label for r in skipped)}: failed a canary gate; "
        "--force to serve it anyway)"
        if skipped
        else ""
    )
    raise NoRollback(
        f"site {current.site_id}: no earlier policy than {current.serving.label}{note}"
    )


def canary_checks(
    client: str | KafkaClientConfig, site_id: str, *, timeout_s: float = 30.0
) -> list[CanaryCheck]:
    """Every gate check record of ``site_id`` on the canary topic (every partition)."""
    from pydantic import ValidationError

    out: list[CanaryCheck] = []
    key = message_key(site_id)
    try:
        records = read_to_end(client, [CANARY.name], timeout_s=timeout_s)
    except TopicReadError as error:
        if "does not exist" in str(error):
            return out  # a broker from before the gate wrote checks
        raise
    for record in records:
        if record.key != key or record.value is None:
            continue
        try:
            check = CanaryCheck.model_validate_json(record.value)
        except ValidationError:
            continue
        if check.site_id == site_id:
            out.append(check)
    return out


__all__ = [
    "GATE_FAILED",
    "NoRollback",
    "RollbackPlan",
    "canary_checks",
    "failed_by_gate",
    "plan_rollback",
]
