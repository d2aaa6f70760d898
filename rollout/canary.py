"""The canary gate: a candidate serves some sites while the incumbent runs in shadow there; it
is promoted when its observed recirculation holds up against the incumbent's counterfactual on
the same arrivals, and rolled back as soon as it does not.

The gate runs in the ``chuteflow policy canary`` process (or ``policy gate`` to pick it up
again), not in the worker: it recomputes everything from Kafka each time it looks (floor
events, allocations, routes), so it can stop and restart at any time and a worker never carries
a simulator. Its verdicts are routes on the control topic with the reason written in them;
workers apply them at the site's next interval boundary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from contracts.control import CanaryState, PolicyRef, PolicyRoute
from floor.scenario import Scenario
from rollout.observe import SiteDay, read_site_day
from rollout.shadow import Fetch, compare
from stream.clients import KafkaClientConfig
from stream.routing import new_route, publish_routes, read_routes


@dataclass(frozen=True)
class GateCheck:
    """One check after a closed interval: rates over the canary's intervals so far."""

    interval: int
    inducted: int
    canary_rate: float
    incumbent_rate: float
    limit: float
    passed: bool


@dataclass(frozen=True)
class GateVerdict:
    """``pass``, ``fail`` or ``pending``, with the checks that led there."""

    site_id: str
    outcome: str
    reason: str
    first_interval: int | None
    checks: tuple[GateCheck, ...]


def canary_start(day: SiteDay, started_revision: int) -> int | None:
    """The first interval the candidate served: its route's revision on the allocation."""
    served = [
        k
        for k, event in sorted(day.allocations.items())
        if (event.route_revision or 0) >= started_revision
    ]
    return served[0] if served else None


def evaluate_gate(
    scenario: Scenario, day: SiteDay, canary: CanaryState, fetch: Fetch
) -> GateVerdict:
    """The gate's checks on ``day`` and its verdict."""
    gate = canary.gate
    first = canary_start(day, canary.started_revision)
    if first is None or day.closed_through < first:
        return GateVerdict(day.site_id, "pending", "no interval served yet", first, ())
    result = compare(scenario, day, fetch, extra=[canary.incumbent], through=day.closed_through)
    incumbent = result.runs[canary.incumbent.label]
    assert day.floor is not None
    checks = []
    for k in range(first, result.closed_through + 1):
        window = slice(first, k + 1)
        inducted = int(day.floor.first_inductions[window].sum())
        if inducted < gate.min_inductions:
            continue
        canary_rate = int(day.floor.recirculated[window].sum()) / inducted
        twin_inducted = max(int(incumbent.first_inductions[window].sum()), 1)
        incumbent_rate = int(incumbent.recirculated[window].sum()) / twin_inducted
        limit = gate.max_ratio * incumbent_rate + gate.slack
        checks.append(
            GateCheck(k, inducted, canary_rate, incumbent_rate, limit, canary_rate <= limit)
        )
    failed = [c for c in checks if not c.passed]
    if len(failed) >= gate.failure_limit:
        worst = failed[-1]
        reason = (
            f"canary gate failed {len(failed)}x (limit {gate.failure_limit}): through interval "
            f"{worst.interval} recirculation {100 * worst.canary_rate:.2f}% > "
            f"{gate.max_ratio:g} x incumbent {canary.incumbent.label} "
            f"{100 * worst.incumbent_rate:.2f}% + {100 * gate.slack:.2f} points"
        )
        return GateVerdict(day.site_id, "fail", reason, first, tuple(checks))
    if len(checks) >= gate.window_intervals:
        last = checks[-1]
        reason = (
            f"canary gate passed: {len(checks)} checks, {len(failed)} failed; through interval "
            f"{last.interval} recirculation {100 * last.canary_rate:.2f}% vs incumbent "
            f"{100 * last.incumbent_rate:.2f}% (limit {100 * last.limit:.2f}%)"
        )
        return GateVerdict(day.site_id, "pass", reason, first, tuple(checks))
    return GateVerdict(
        day.site_id,
        "pending",
        f"{len(checks)}/{gate.window_intervals} checks, {len(failed)} failed",
        first,
        tuple(checks),
    )


def rollback_route(route: PolicyRoute, reason: str, action: str = "rollback") -> PolicyRoute:
    """The incumbent serves again (the route before the canary's, shadows kept)."""
    canary = route.canary
    incumbent = canary.incumbent if canary is not None else None
    if incumbent is None:
        raise ValueError(f"site {route.site_id}: no canary to roll back")
    shadows = [ref for ref in route.shadows if ref.key not in {incumbent.key, route.serving.key}]
    return new_route(
        route, route.site_id, serving=incumbent, shadows=shadows, action=action, reason=reason
    )


def promote_routes(
    routes: Mapping[str, PolicyRoute], site_id: str, reason: str
) -> list[PolicyRoute]:
    """The candidate of ``site_id``'s canary serves the canary site and the gate's
    ``promote_to`` sites, with no canary left."""
    route = routes[site_id]
    assert route.canary is not None
    candidate, target = route.serving, route.canary.gate.promote_to
    names = [site_id] if target is None else (sorted(routes) if target == "all" else target)
    out = []
    for name in dict.fromkeys([site_id, *names]):
        current = routes.get(name)
        shadows = [] if current is None else [r for r in current.shadows if r.key != candidate.key]
        if name == site_id:
            shadows = [r for r in shadows if r.key != route.canary.incumbent.key]
        out.append(
            new_route(
                current, name, serving=candidate, shadows=shadows, action="promote", reason=reason
            )
        )
    return out


def check_once(
    client: KafkaClientConfig, scenarios: Mapping[str, Scenario], fetch: Fetch
) -> dict[str, GateVerdict]:
    """Evaluate every open canary on ``scenarios``' sites once and act on the verdicts: a
    failed gate rolls its site back, a passed one promotes the candidate."""
    verdicts: dict[str, GateVerdict] = {}
    routes = read_routes(client)
    for site_id in scenarios:
        route = routes.get(site_id)
        if route is None or route.canary is None:
            continue
        day = read_site_day(client, scenarios[site_id])
        verdict = evaluate_gate(scenarios[site_id], day, route.canary, fetch)
        verdicts[site_id] = verdict
        if verdict.outcome == "fail":
            publish_routes(client, [rollback_route(route, verdict.reason)], wait_applied=True)
        elif verdict.outcome == "pass":
            promoted = promote_routes(routes, site_id, verdict.reason)
            publish_routes(client, promoted, wait_applied=True)
    return verdicts


def watch(
    client: KafkaClientConfig,
    scenarios: Mapping[str, Scenario],
    fetch: Fetch,
    *,
    poll_s: float = 2.0,
    timeout_s: float = 3600.0,
    report: Callable[[GateVerdict], None] = lambda verdict: None,
) -> dict[str, GateVerdict]:
    """:func:`check_once` every ``poll_s`` until no canary is open on ``scenarios``' sites, or
    ``timeout_s``; returns the last verdict per site."""
    last: dict[str, GateVerdict] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        verdicts = check_once(client, scenarios, fetch)
        for site_id, verdict in verdicts.items():
            if verdict != last.get(site_id):
                report(verdict)
            last[site_id] = verdict
        if all(v.outcome != "pending" for v in verdicts.values()):
            return last
        time.sleep(poll_s)
    return last


def canary_route(
    current: PolicyRoute | None,
    site_id: str,
    candidate: PolicyRef,
    incumbent: PolicyRef,
    canary: CanaryState,
) -> PolicyRoute:
    """The candidate serves, the incumbent runs in shadow beside the existing shadows."""
    shadows = [] if current is None else list(current.shadows)
    shadows = [r for r in shadows if r.key not in {candidate.key, incumbent.key}]
    return new_route(
        current,
        site_id,
        serving=candidate,
        shadows=[incumbent, *shadows][:4],
        canary=canary,
        action="canary",
        reason=f"canary of {candidate.label} against {incumbent.label}",
    )


__all__ = [
    "GateCheck",
    "GateVerdict",
    "canary_route",
    "canary_start",
    "check_once",
    "evaluate_gate",
    "promote_routes",
    "rollback_route",
    "watch",
]
