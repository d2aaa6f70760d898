"""A decision's records: the served policy decides on the interval's state, each shadow decides
on the same state, and the audit says who decided what on which inputs.

Split from :mod:`stream.processor`, which decides *when* an interval closes; this module is
*what* a close publishes: the allocation (``allocations``), each shadow's decision
(``shadow-decisions``, never the allocation topic and never the tracker's chute owners: the
floor runs the served allocation) and one audit record (``decisions-audit``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from contracts.codec import encode
from contracts.topics import ALLOCATIONS, DECISIONS_AUDIT, SHADOW, message_key
from decision.engine import Decision
from decision.state import SiteState
from stream.deadletter import OutRecord
from stream.observations import DecisionObserved
from stream.site_runtime import SiteRuntime


def decision_records(
    site: SiteRuntime,
    state: SiteState,
    how: str,
    *,
    worker_id: str | None,
    counted: dict[str, int] | None = None,
    declared: dict[str, int] | None = None,
    on_decision: Callable[[DecisionObserved], None] | None = None,
) -> list[OutRecord]:
    """Decide ``site``'s next interval on ``state`` (the close's trigger ``how``), set the
    tracker's chute owners to the served allocation, and return the records to publish.

    ``counted``/``declared``: the records of each floor topic the worker applied for the
    closed interval and the close's own counts (into the audit); ``on_decision`` sees every
    decision's summary, served and shadow (metrics, log)."""
    start = site.interval_start(state.interval_index)
    # The allocation's time is its interval's start, not the wall clock: a redelivered or
    # replayed decision is then byte-identical, and replay is deterministic.
    revision = site.route_revision
    decision = site.serving().decide(
        state, interval_start=start, now=start, route_revision=revision
    )
    site.tracker.apply_owner(decision.owner, state.interval_index)
    if on_decision is not None:
        on_decision(observed(site, decision, role="served", how=how, revision=revision))
    key = message_key(site.config.site_id)
    audit = {
        "decision_id": decision.event.decision_id,
        "site_id": site.config.site_id,
        "interval_index": state.interval_index,
        "trigger": how,
        "worker": worker_id,
        "solver_status": decision.event.solver_status,
        "policy": {
            "name": decision.event.policy_name,
            "version": decision.event.policy_version,
            "sha256": decision.event.policy_sha256,
        },
        "route_revision": revision,
        "fallback_reason": decision.fallback_reason,
        "proven_optimal": decision.proven_optimal,
        "moves": decision.moves,
        "policy_error": decision.policy_error,
        "timings_ms": {k: round(v, 3) for k, v in decision.timings_ms.items()},
        "inputs": {
            "arrivals_last_interval": int(state.arrivals[0].sum()),
            "recirculated_last_interval": int(state.recirculated.sum()),
            "backlog": int(state.backlog.sum()),
            "chutes_available": int(state.chute_available.sum()),
            "chutes_open": int(state.chute_open.sum()),
            "chutes_held": int(state.held().sum()),
            "records_counted": counted or {},
            "records_declared": declared,
        },
    }
    out = [OutRecord(ALLOCATIONS.name, key, encode(decision.event))]
    shadows = []
    for ref, engine in site.shadows():
        # The same live state, projection and validator; never the allocation topic, and
        # never the tracker's chute owners (the floor runs the served allocation).
        shadow = engine.decide(state, interval_start=start, now=start, route_revision=revision)
        out.append(OutRecord(SHADOW.name, key, encode(shadow.event)))
        if on_decision is not None:
            on_decision(observed(site, shadow, role="shadow", how=how, revision=revision))
        shadows.append(
            {
                "policy": ref.label,
                "decision_id": shadow.event.decision_id,
                "chutes_differing": int(np.abs(shadow.counts - decision.counts).sum()) // 2,
                "total_ms": round(shadow.timings_ms.get("total", 0.0), 3),
                "fallback_reason": shadow.fallback_reason,
            }
        )
    audit["shadows"] = shadows
    out.append(OutRecord(DECISIONS_AUDIT.name, key, json.dumps(audit, sort_keys=True).encode()))
    return out


def observed(
    site: SiteRuntime, decision: Decision, *, role: str, how: str, revision: int
) -> DecisionObserved:
    event = decision.event
    return DecisionObserved(
        site_id=site.config.site_id,
        interval_index=event.interval_index,
        total_ms=decision.timings_ms.get("total", 0.0),
        solver_status=event.solver_status,
        policy_error=decision.policy_error,
        policy_name=event.policy_name,
        policy_version=event.policy_version,
        fallback_from=event.fallback_from,
        role=role,
        day="" if site.day_start is None else site.day_start.date().isoformat(),
        route_revision=revision,
        fallback_reason=decision.fallback_reason,
        trigger=how,
    )


__all__ = ["decision_records", "observed"]
