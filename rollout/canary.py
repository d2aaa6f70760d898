"""The canary gate's rule and routes: a candidate serves some sites while the incumbent runs in
shadow there; it is promoted when its observed recirculation holds up against the incumbent's
counterfactual on the same arrivals, and rolled back as soon as it does not.

The rule (:func:`judge`) and the routes a verdict writes live here; the gate that applies them
interval by interval is ``rollout/gate.py`` (state) and ``rollout/watcher.py`` (Kafka). Verdicts
are routes on the control topic with the reason written in them; workers apply them at the
site's next interval boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contracts.control import MAX_SHADOWS, CanaryState, PolicyRef, PolicyRoute
from stream.routing import new_route


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
    """``pass``, ``fail``, ``pending`` or ``ended`` (someone else replaced the canary's route),
    with the checks that led there."""

    site_id: str
    outcome: str
    reason: str
    first_interval: int | None
    checks: tuple[GateCheck, ...]


def judge(
    site_id: str, canary: CanaryState, first: int | None, checks: list[GateCheck]
) -> GateVerdict:
    """The gate's verdict after ``checks`` (in interval order): ``failure_limit`` failed checks
    fail it, ``window_intervals`` checks without that many failures pass it."""
    gate = canary.gate
    failed = [c for c in checks if not c.passed]
    if len(failed) >= gate.failure_limit:
        worst = failed[-1]
        reason = (
            f"canary gate failed {len(failed)}x (limit {gate.failure_limit}): through interval "
            f"{worst.interval} recirculation {100 * worst.canary_rate:.2f}% > "
            f"{gate.max_ratio:g} x incumbent {canary.incumbent.label} "
            f"{100 * worst.incumbent_rate:.2f}% + {100 * gate.slack:.2f} points"
        )
        return GateVerdict(site_id, "fail", reason, first, tuple(checks))
    if len(checks) >= gate.window_intervals:
        last = checks[-1]
        reason = (
            f"canary gate passed: {len(checks)} checks, {len(failed)} failed; through interval "
            f"{last.interval} recirculation {100 * last.canary_rate:.2f}% vs incumbent "
            f"{100 * last.incumbent_rate:.2f}% (limit {100 * last.limit:.2f}%)"
        )
        return GateVerdict(site_id, "pass", reason, first, tuple(checks))
    last_text = ""
    if checks:
        c = checks[-1]
        last_text = (
            f"; interval {c.interval}: {100 * c.canary_rate:.2f}% vs limit {100 * c.limit:.2f}%"
            f" ({'passed' if c.passed else 'FAILED'})"
        )
    return GateVerdict(
        site_id,
        "pending",
        f"{len(checks)}/{gate.window_intervals} checks, {len(failed)} failed{last_text}",
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


def shadow_route(route: PolicyRoute, shadows: list[PolicyRef], reason: str) -> PolicyRoute:
    """``route`` with ``shadows`` running beside the serving policy; an open canary stays open.

    Why: a route is written whole, and every other action ends a canary by writing none. A
    shadow change did so too: ``policy shadow`` (or ``site onboard --register``) during a canary
    dropped it and its incumbent, so the candidate went on serving with no gate watching it
    and nothing to compare it with. Shadows are not a verdict: the canary and its incumbent (in
    shadow: the gate's comparison) are kept.

    Raises:
        ValueError: the serving policy among the shadows, or more shadows (a canary's incumbent
            included) than a route holds.
    """
    canary = route.canary
    if route.serving.key in {r.key for r in shadows}:
        raise ValueError(
            f"site {route.site_id}: {route.serving.label} serves it; it cannot also run in shadow"
        )
    shadows = list({r.key: r for r in shadows}.values())  # a policy named twice runs once
    if canary is not None and canary.incumbent.key not in {r.key for r in shadows}:
        shadows = [canary.incumbent, *shadows]
    if len(shadows) > MAX_SHADOWS:
        kept = f" (the canary's incumbent {canary.incumbent.label} among them)" if canary else ""
        raise ValueError(
            f"site {route.site_id}: {len(shadows)} shadows{kept}; a route holds {MAX_SHADOWS}"
        )
    return new_route(
        route, route.site_id, shadows=shadows, canary=canary, action="shadow", reason=reason
    )


__all__ = [
    "GateCheck",
    "GateVerdict",
    "canary_route",
    "judge",
    "promote_routes",
    "rollback_route",
    "shadow_route",
]
