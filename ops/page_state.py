"""The page's picture of one site, from :class:`ops.model.SiteView`: what serves and shadows
since when and why, the canary episodes with their checks, the day interval by interval, the
route history. Pure functions of the model's state (called under its lock)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.control import PolicyRoute
from ops.model import DayView, OpsModel, SiteView


@dataclass
class GateCheckRow:
    """One gate check as the page shows it (the gate's record, or the observed side only)."""

    interval: int
    inducted: int
    canary_rate: float
    incumbent_rate: float | None
    limit: float | None
    passed: bool | None
    outcome: str | None
    source: str
    latency_ms: float | None = None
    """``gate`` (published by the gate) or ``observed`` (the candidate's observed rate only:
    no gate record for this interval yet)."""


def snapshot(model: OpsModel) -> dict[str, Any]:
    """The whole page's state as JSON-ready dicts, read under the model's lock."""
    with model.lock:
        return {
            "version": model.version,
            "records": model.records,
            "sites": [site_state(model.sites[s]) for s in sorted(model.sites)],
            "dead_letters": {
                "by_kind": dict(sorted(model.dead_by_kind.items())),
                "total": sum(model.dead_by_kind.values()),
                "since_ms": model.dead_since_ms,
                "recent": list(model.dead_recent),
            },
        }


def site_state(view: SiteView) -> dict[str, Any]:
    """One site's part of the page's JSON."""
    routes = view.ordered_routes()
    day = view.current_day()
    return {
        "site_id": view.site_id,
        "route": _route_state(routes, day),
        "history": [_route_row(stamp, route) for stamp, route in routes],
        "canaries": _canaries(view, routes, day),
        "day": None if day is None else _day_state(day),
    }


def _route_row(stamp: int, route: PolicyRoute) -> dict[str, Any]:
    return {
        "revision": route.revision,
        "time": route.event_time.isoformat(),
        "kafka_ms": stamp,
        "action": route.action,
        "serving": route.serving.label,
        "shadows": [ref.label for ref in route.shadows],
        "canary": route.canary is not None,
        "reason": route.reason,
        "issued_by": route.issued_by,
    }


def _since(routes: list[tuple[int, PolicyRoute]], holds: Any) -> PolicyRoute | None:
    """The earliest route of the latest unbroken run of routes for which ``holds(route)``."""
    start = None
    for _, route in reversed(routes):
        if not holds(route):
            break
        start = route
    return start


def _first_interval(day: DayView | None, label: str, revision: int, shadow: bool) -> int | None:
    """The first interval of ``day`` that ``label`` decided under ``revision`` or later."""
    if day is None:
        return None
    if shadow:
        intervals = sorted(day.shadow.get(label, {}))
        return intervals[0] if intervals else None
    for k in sorted(day.served):
        served = day.served[k]
        if served.policy == label and (served.route_revision or 0) >= revision:
            return k
    return None


def _route_state(routes: list[tuple[int, PolicyRoute]], day: DayView | None) -> dict[str, Any]:
    if not routes:
        return {"revision": None}
    current = routes[-1][1]
    serving = current.serving
    began = _since(routes, lambda r: r.serving.key == serving.key)
    assert began is not None
    shadows = []
    for ref in current.shadows:
        since = _since(routes, lambda r, key=ref.key: key in {s.key for s in r.shadows})
        assert since is not None
        shadows.append(
            {
                "label": ref.label,
                "name": ref.name,
                "version": (ref.sha256 or "")[:16] or "built-in",
                "since_revision": since.revision,
                "since_interval": _first_interval(day, ref.label, since.revision, shadow=True),
                "action": since.action,
                "reason": since.reason,
            }
        )
    return {
        "revision": current.revision,
        "action": current.action,
        "reason": current.reason,
        "serving": {
            "label": serving.label,
            "name": serving.name,
            "version": (serving.sha256 or "")[:16] or "built-in",
            "since_revision": began.revision,
            "since_interval": _first_interval(day, serving.label, began.revision, shadow=False),
            "action": began.action,
            "reason": began.reason,
        },
        "shadows": shadows,
        "fallback": current.fallback,
        "deadline_ms": current.deadline_ms,
        "canary_open": current.canary is not None,
    }


def _day_state(day: DayView) -> dict[str, Any]:
    last = max(
        [day.closed_through, *day.served, *(k for c in day.floor.values() for k in c)], default=-1
    )
    rows = []
    total_inducted = total_recirculated = 0
    for k in range(last + 1):
        inducted = day.floor["inducted"][k]
        recirculated = day.floor["recirculated"][k]
        total_inducted += inducted
        total_recirculated += recirculated
        served = day.served.get(k)
        row: dict[str, Any] = {
            "interval": k,
            "closed": k <= day.closed_through,
            "inducted": inducted,
            "recirculated": recirculated,
            "sorted": day.floor["sorted"][k],
            "rate": recirculated / inducted if inducted else None,
            "day_rate": total_recirculated / total_inducted if total_inducted else None,
            "served": None if served is None else served.policy,
            "route_revision": None if served is None else served.route_revision,
            "fallback": None if served is None else served.fallback_reason,
            "solver_status": None if served is None else served.solver_status,
            "shadow_moved": {},
        }
        for label, decisions in sorted(day.shadow.items()):
            if served is not None and k in decisions:
                row["shadow_moved"][label] = _chutes_apart(served.chutes, decisions[k])
        rows.append(row)
    return {
        "day_key": day.day_key,
        "day_start": day.day_start.isoformat(),
        "day_type_group": day.day_type_group,
        "interval_minutes": None if day.interval_s is None else day.interval_s / 60.0,
        "n_intervals": day.n_intervals,
        "closed_through": day.closed_through,
        "inducted": total_inducted,
        "recirculated": total_recirculated,
        "rate": total_recirculated / total_inducted if total_inducted else None,
        "shadows": sorted(day.shadow),
        "intervals": rows,
    }


def _chutes_apart(served: dict[str, int], shadow: dict[str, int]) -> int:
    """Chutes the shadow would give to other destinations than the served allocation does."""
    destinations = set(served) | set(shadow)
    return sum(abs(served.get(d, 0) - shadow.get(d, 0)) for d in destinations) // 2


def _canaries(
    view: SiteView, routes: list[tuple[int, PolicyRoute]], day: DayView | None
) -> list[dict[str, Any]]:
    """Canary episodes, latest first: opened by a route with a canary, ended by the next
    route without it (its action and reason say how)."""
    episodes: list[dict[str, Any]] = []
    open_episode: dict[str, Any] | None = None
    for stamp, route in routes:
        canary = route.canary
        if canary is not None and (
            open_episode is None or open_episode["started_revision"] != canary.started_revision
        ):
            open_episode = {
                "candidate": route.serving.label,
                "incumbent": canary.incumbent.label,
                "started_revision": canary.started_revision,
                "opened_ms": stamp,
                "opened_reason": route.reason,
                "gate": canary.gate.model_dump(mode="json"),
                "ended": None,
            }
            episodes.append(open_episode)
        elif canary is None and open_episode is not None:
            open_episode["ended"] = {
                "action": route.action,
                "revision": route.revision,
                "reason": route.reason,
                "time": route.event_time.isoformat(),
                "kafka_ms": stamp,
                "serving": route.serving.label,
            }
            open_episode = None
    for episode in episodes:
        episode.update(_episode_progress(view, episode, day))
    return list(reversed(episodes))


def _episode_progress(
    view: SiteView, episode: dict[str, Any], day: DayView | None
) -> dict[str, Any]:
    """The episode's served intervals and gate checks: the gate's own records where it
    published them, else the candidate's observed rate since its first interval."""
    checks: dict[int, GateCheckRow] = {}
    verdict = None
    for _, check in view.gate_checks:
        if check.canary_revision != episode["started_revision"]:
            continue
        if check.outcome != "pending":
            verdict = {
                "outcome": check.outcome,
                "reason": check.reason,
                "interval": check.interval,
                "verdict_revision": check.verdict_revision,
            }
        if check.interval < 0 or check.checks == 0:
            continue  # nothing served yet, or too few inductions for a check
        checks[check.interval] = GateCheckRow(
            interval=check.interval,
            inducted=check.inducted,
            canary_rate=check.canary_rate,
            incumbent_rate=check.incumbent_rate,
            limit=check.limit,
            passed=check.passed,
            outcome=check.outcome,
            source="gate",
            latency_ms=check.latency_ms,
        )
    served: list[int] = []
    if day is not None:
        served = [
            k
            for k, s in sorted(day.served.items())
            if s.policy == episode["candidate"]
            and (s.route_revision or 0) >= episode["started_revision"]
        ]
    if served and day is not None:
        first = served[0]
        inducted = recirculated = 0
        for k in range(first, day.closed_through + 1):
            inducted += day.floor["inducted"][k]
            recirculated += day.floor["recirculated"][k]
            if k not in checks and inducted and k <= served[-1]:
                checks[k] = GateCheckRow(
                    k, inducted, recirculated / inducted, None, None, None, None, "observed"
                )
    failed = [c.interval for c in checks.values() if c.passed is False]
    after_fail = len([k for k in served if failed and k > min(failed)])
    return {
        "served_intervals": served,
        "checks": [checks[k].__dict__ for k in sorted(checks)],
        "verdict": verdict,
        "first_failed_interval": min(failed) if failed else None,
        "served_after_first_failure": after_fail if failed else None,
    }


__all__ = ["GateCheckRow", "site_state", "snapshot"]
