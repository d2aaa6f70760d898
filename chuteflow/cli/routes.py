"""``chuteflow policy route|shadow|canary|gate|promote|abort|rollback|routes|history``: live
policy operations on the control topic (``contracts/control.py``, ``rollout/``).

Every command writes one route per site (revision + 1) and returns; workers apply it at the
site's next interval boundary. ``canary`` also watches its gate (``rollout/canary.py``) until it
passes or fails, unless ``--no-watch``; ``gate`` picks the watching up again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from chuteflow.cli._shared import Subparsers, add_kafka_options, kafka_client, print_json


def add_commands(sub: Subparsers) -> None:
    """The routing subcommands of ``chuteflow policy``."""
    route = sub.add_parser("route", help="set which policy serves a site (hot swap, next interval)")
    route.add_argument("--site", required=True, action="append", help="site id; repeat for several")
    route.add_argument("--serve", required=True, metavar="POLICY", help=_POLICY_HELP)
    route.add_argument("--shadow", action="append", default=None, metavar="POLICY")
    route.add_argument("--fallback", choices=("proportional", "static"), default=None)
    route.add_argument("--deadline-ms", type=float, default=None, help="inference deadline")
    route.add_argument("--reason", default="set by operator")
    _common(route, run_route)

    shadow = sub.add_parser("shadow", help="set the policies that run in shadow on a site")
    shadow.add_argument("policies", nargs="*", metavar="POLICY", help=_POLICY_HELP)
    shadow.add_argument("--site", required=True, action="append")
    shadow.add_argument("--reason", default="shadow set by operator")
    _common(shadow, run_shadow)

    canary = sub.add_parser(
        "canary", help="serve a candidate on some sites, gated on KPIs against the incumbent"
    )
    canary.add_argument("policy", metavar="NAME@VERSION", help=_POLICY_HELP)
    canary.add_argument("--sites", required=True, nargs="+")
    canary.add_argument(
        "--incumbent", default=None, help="what it is compared with (default: what serves now)"
    )
    canary.add_argument("--gate", metavar="FILE.yaml", help="gate settings (rollout CanaryGate)")
    canary.add_argument("--window", type=int, default=None, help="checks before it passes")
    canary.add_argument("--max-ratio", type=float, default=None, help="x incumbent's rate")
    canary.add_argument("--slack", type=float, default=None, help="absolute rate slack")
    canary.add_argument("--failure-limit", type=int, default=None, help="failed checks to fail")
    canary.add_argument("--min-inductions", type=int, default=None)
    canary.add_argument(
        "--promote-to", nargs="+", default=None, help="sites (or 'all') to serve it on a pass"
    )
    canary.add_argument("--no-watch", action="store_true", help="start it and return")
    canary.add_argument("--timeout-seconds", type=float, default=3600.0)
    canary.add_argument(
        "--scenario", action="append", help="scenario of a site (default: built-in)"
    )
    _common(canary, run_canary)

    gate = sub.add_parser("gate", help="watch the open canaries' gates until they decide")
    gate.add_argument("--scenario", action="append", help="scenario of a site (default: built-in)")
    gate.add_argument("--timeout-seconds", type=float, default=3600.0)
    _common(gate, run_gate)

    for name, helptext, func in (
        (
            "promote",
            "end a site's canary now: the candidate serves (and its promote-to)",
            run_promote,
        ),
        ("abort", "end a site's canary now: the incumbent serves again", run_abort),
        (
            "rollback",
            "serve the site's previous policy again, from the next interval",
            run_rollback,
        ),
    ):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("--site", required=True, action="append")
        cmd.add_argument("--reason", default=f"{name} by operator")
        _common(cmd, func)

    routes = sub.add_parser("routes", help="every site's current route")
    _common(routes, run_routes)

    history = sub.add_parser("history", help="what served a site when, interval by interval")
    history.add_argument("--site", required=True)
    history.add_argument("--day", default=None, help="date or day key prefix")
    history.add_argument("--intervals", action="store_true", help="one line per interval")
    _common(history, run_history)


_POLICY_HELP = "proportional, static, or a store version NAME@VERSION / sha256:HEX"


def _common(parser: argparse.ArgumentParser, func: Any) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="return once the broker has the route, without waiting for the site's worker",
    )
    add_kafka_options(parser)
    parser.set_defaults(func=func)


def _publish(args: argparse.Namespace, routes: list[Any]) -> int:
    from stream.routing import publish_routes

    wait = not getattr(args, "no_wait", False)
    answers = publish_routes(kafka_client(args), routes, wait_applied=wait)
    refused = False
    for route in routes:
        answer = answers[route.site_id]
        refused |= answer.startswith("refused")
        if args.json:
            print_json({**json.loads(route.model_dump_json()), "worker_answer": answer})
        else:
            shadows = ", ".join(r.label for r in route.shadows) or "none"
            print(
                f"{route.site_id}: revision {route.revision} ({route.action}): "
                f"{route.serving.label} serves, shadow {shadows}; {answer}"
                + ("; from the next interval" if answer.startswith("applied") else "")
            )
    return 2 if refused else 0


def run_route(args: argparse.Namespace) -> int:
    from rollout.refs import policy_ref
    from stream.routing import new_route, read_routes

    client = kafka_client(args)
    serving = policy_ref(client, args.serve)
    current = read_routes(client)
    out = []
    for site in args.site:
        now = current.get(site)
        fields: dict[str, Any] = {"serving": serving, "action": "route", "reason": args.reason}
        if args.shadow is not None:
            fields["shadows"] = [policy_ref(client, s) for s in args.shadow]
        elif now is not None:
            fields["shadows"] = [r for r in now.shadows if r.key != serving.key]
        if args.fallback is not None:
            fields["fallback"] = args.fallback
        if args.deadline_ms is not None:
            fields["deadline_ms"] = args.deadline_ms
        out.append(new_route(now, site, **fields))
    return _publish(args, out)


def run_shadow(args: argparse.Namespace) -> int:
    from rollout.refs import RefError, policy_ref
    from stream.routing import new_route, read_routes

    client = kafka_client(args)
    refs = [policy_ref(client, p) for p in args.policies]
    current = read_routes(client)
    out = []
    for site in args.site:
        now = current.get(site)
        if now is None:
            raise RefError(f"site {site}: no route yet; set one with `policy route --serve`")
        out.append(new_route(now, site, shadows=refs, action="shadow", reason=args.reason))
    return _publish(args, out)


def _gate(args: argparse.Namespace) -> Any:
    import yaml

    from contracts.control import CanaryGate

    fields: dict[str, Any] = {}
    if args.gate:
        loaded = yaml.safe_load(Path(args.gate).read_text())
        fields.update(loaded or {})
    for flag, name in (
        ("window", "window_intervals"),
        ("max_ratio", "max_ratio"),
        ("slack", "slack"),
        ("failure_limit", "failure_limit"),
        ("min_inductions", "min_inductions"),
    ):
        value = getattr(args, flag)
        if value is not None:
            fields[name] = value
    if args.promote_to is not None:
        fields["promote_to"] = "all" if args.promote_to == ["all"] else args.promote_to
    return CanaryGate.model_validate(fields, strict=False)


def run_canary(args: argparse.Namespace) -> int:
    from contracts.control import CanaryState
    from rollout.canary import canary_route
    from rollout.refs import RefError, policy_ref
    from stream.routing import read_routes

    client = kafka_client(args)
    candidate = policy_ref(client, args.policy)
    gate = _gate(args)
    current = read_routes(client)
    out = []
    for site in args.sites:
        now = current.get(site)
        if args.incumbent is not None:
            incumbent = policy_ref(client, args.incumbent)
        elif now is not None:
            incumbent = now.serving
        else:
            raise RefError(f"site {site}: no route yet, so give --incumbent")
        if incumbent.key == candidate.key:
            raise RefError(f"site {site}: {candidate.label} already serves")
        revision = (0 if now is None else now.revision) + 1
        state = CanaryState(incumbent=incumbent, gate=gate, started_revision=revision)
        out.append(canary_route(now, site, candidate, incumbent, state))
    _publish(args, out)
    if args.no_watch:
        return 0
    return _watch(args, client, args.sites)


def _watch(args: argparse.Namespace, client: Any, sites: list[str] | None) -> int:
    from rollout.canary import GateVerdict, watch
    from rollout.refs import scenarios_by_site
    from stream.policy_store import ArtifactFetcher

    scenarios = scenarios_by_site(args.scenario)
    if sites is not None:
        scenarios = {s: scenarios[s] for s in sites if s in scenarios}

    def report(verdict: GateVerdict) -> None:
        print(f"{verdict.site_id}: {verdict.outcome}: {verdict.reason}", flush=True)

    verdicts = watch(
        client, scenarios, ArtifactFetcher(client), timeout_s=args.timeout_seconds, report=report
    )
    failed = [v for v in verdicts.values() if v.outcome == "fail"]
    pending = [v for v in verdicts.values() if v.outcome == "pending"]
    if pending:
        print(f"gate still open on {', '.join(v.site_id for v in pending)}", file=sys.stderr)
        return 3
    return 1 if failed else 0


def run_gate(args: argparse.Namespace) -> int:
    return _watch(args, kafka_client(args), None)


def _canary_routes(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    from rollout.refs import RefError
    from stream.routing import read_routes

    client = kafka_client(args)
    current = read_routes(client)
    for site in args.site:
        if site not in current or current[site].canary is None:
            raise RefError(f"site {site}: no canary in progress")
    return client, current


def run_promote(args: argparse.Namespace) -> int:
    from rollout.canary import promote_routes

    _, current = _canary_routes(args)
    out = [r for site in args.site for r in promote_routes(current, site, args.reason)]
    return _publish(args, out)


def run_abort(args: argparse.Namespace) -> int:
    from rollout.canary import rollback_route

    _, current = _canary_routes(args)
    return _publish(args, [rollback_route(current[s], args.reason, "abort") for s in args.site])


def run_rollback(args: argparse.Namespace) -> int:
    """The previous serving policy: the canary's incumbent, else the latest earlier route that
    served another policy."""
    from rollout.canary import rollback_route
    from rollout.refs import RefError
    from stream.routing import new_route, read_routes, route_records

    client = kafka_client(args)
    current = read_routes(client)
    out = []
    for site in args.site:
        now = current.get(site)
        if now is None:
            raise RefError(f"site {site}: no route to roll back")
        if now.canary is not None:
            out.append(rollback_route(now, args.reason))
            continue
        routes = sorted((r for _, r in route_records(client, site)), key=lambda r: r.revision)
        earlier = [r for r in routes if r.revision < now.revision and r.serving != now.serving]
        if not earlier:
            raise RefError(f"site {site}: no earlier policy than {now.serving.label}")
        previous = earlier[-1].serving
        shadows = [r for r in now.shadows if r.key != previous.key]
        out.append(
            new_route(
                now, site, serving=previous, shadows=shadows, action="rollback", reason=args.reason
            )
        )
    return _publish(args, out)


def run_routes(args: argparse.Namespace) -> int:
    from stream.routing import read_routes

    routes = read_routes(kafka_client(args))
    for site, route in sorted(routes.items()):
        if args.json:
            print_json(json.loads(route.model_dump_json()))
            continue
        canary = "" if route.canary is None else f", canary vs {route.canary.incumbent.label}"
        shadows = ", ".join(r.label for r in route.shadows) or "none"
        print(
            f"{site}: revision {route.revision} ({route.action}) {route.serving.label} serves, "
            f"shadow {shadows}{canary}; {route.reason}"
        )
    return 0


def run_history(args: argparse.Namespace) -> int:
    from rollout.history import served_history, spans

    rows, routes = served_history(kafka_client(args), args.site, args.day)
    if args.json:
        print_json(
            {
                "intervals": [row.__dict__ for row in rows],
                "routes": [json.loads(r.model_dump_json()) for r in routes],
            }
        )
        return 0
    print(f"routes of {args.site}:")
    for route in routes:
        print(
            f"  revision {route.revision:4d} {route.event_time:%Y-%m-%d %H:%M:%S} "
            f"{route.action:8s} {route.serving.label} serves; {route.reason}"
        )
    print("served:")
    if args.intervals:
        for row in rows:
            fallback = f" FALLBACK ({row.fallback_reason})" if row.fallback_reason else ""
            sha = f"@{row.sha256[:12]}" if row.sha256 else ""
            print(
                f"  {row.day} interval {row.interval:4d} {row.policy}{sha} "
                f"revision {row.route_revision}{fallback}"
            )
    else:
        for day, first, last, label, revision, fallbacks in spans(rows):
            extra = f", {fallbacks} by the fallback" if fallbacks else ""
            print(f"  {day} intervals {first}-{last}: {label} (revision {revision}){extra}")
    return 0


__all__ = ["add_commands"]
