"""``chuteflow policy route|shadow|rollback|routes|history``: live policy operations on the
control topic (``contracts/control.py``, ``rollout/``); the canary verbs are
``chuteflow/cli/canary.py``.

Every command writes one route per site (revision + 1) and returns; workers apply it at the
site's next interval boundary.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from chuteflow.cli._shared import (
    Subparsers,
    add_deprecated,
    add_kafka_options,
    kafka_client,
    non_negative_float,
    print_json,
)


def add_commands(sub: Subparsers) -> None:
    """The routing subcommands of ``chuteflow policy``."""
    route = sub.add_parser("route", help="set which policy serves a site (hot swap, next interval)")
    route.add_argument("--site", required=True, action="append", help="site id; repeat for several")
    route.add_argument("--serve", required=True, metavar="POLICY", help=_POLICY_HELP)
    route.add_argument("--shadow", action="append", default=None, metavar="POLICY")
    # One flag name per meaning: the worker's names (chuteflow/cli/_shared.py).
    route.add_argument(
        "--fallback-policy",
        dest="fallback",
        choices=("proportional", "static"),
        default=None,
        help="decides an interval whose policy fails or misses the deadline (default: keep)",
    )
    add_deprecated(
        route, "--fallback", "--fallback-policy", "fallback", choices=("proportional", "static")
    )
    route.add_argument(
        "--inference-deadline-ms",
        dest="deadline_ms",
        type=non_negative_float,
        default=None,
        help="inference deadline in ms (default: keep)",
    )
    add_deprecated(
        route, "--deadline-ms", "--inference-deadline-ms", "deadline_ms", type=non_negative_float
    )
    route.add_argument("--reason", default="set by operator")
    _common(route, run_route)

    shadow = sub.add_parser("shadow", help="set the policies that run in shadow on a site")
    shadow.add_argument("policies", nargs="*", metavar="POLICY", help=_POLICY_HELP)
    shadow.add_argument("--site", required=True, action="append")
    shadow.add_argument("--reason", default="shadow set by operator")
    _common(shadow, run_shadow)

    rollback = sub.add_parser(
        "rollback",
        help="serve the site's previous policy again (with its shadows), from the next interval",
        description="Serve the policy that served before the current one, with the shadows it "
        "had. A version a canary gate failed on the site is never served again this way (the "
        "rollback goes further back) unless --force. Inside a canary: the incumbent.",
    )
    rollback.add_argument("--site", required=True, action="append", help="site id; repeat")
    rollback.add_argument("--reason", default="rollback by operator", help="written on the route")
    rollback.add_argument(
        "--force", action="store_true", help="serve the previous policy even if a gate failed it"
    )
    _common(rollback, run_rollback)

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
    refused = any(answers[route.site_id].startswith("refused") for route in routes)
    if args.json:
        print_json(
            [
                {**json.loads(route.model_dump_json()), "worker_answer": answers[route.site_id]}
                for route in routes
            ]
        )
        return 2 if refused else 0
    for route in routes:
        answer = answers[route.site_id]
        shadows = ", ".join(r.label for r in route.shadows) or "none"
        print(
            f"{route.site_id}: revision {route.revision} ({route.action}): "
            f"{route.serving.label} serves, shadow {shadows}; {answer}"
            + ("; from the next interval" if answer.startswith("applied") else "")
        )
    return 2 if refused else 0


def run_route(args: argparse.Namespace) -> int:
    from rollout.refs import RefError, policy_ref
    from stream.routing import new_route, read_routes

    client = kafka_client(args)
    serving = policy_ref(client, args.serve)
    current = read_routes(client)
    out = []
    for site in args.site:
        now = current.get(site)
        if now is not None and now.canary is not None:
            # A route written over a canary ends it with no verdict: the gate stops, and what
            # serves is neither the gate's pass nor its rollback. Those verbs say which.
            raise RefError(
                f"site {site}: a canary of {now.serving.label} against "
                f"{now.canary.incumbent.label} is open (policy promote|abort first, or policy "
                "rollback: the incumbent serves again)"
            )
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
    from stream.routing import read_routes

    client = kafka_client(args)
    refs = [policy_ref(client, p) for p in args.policies]
    current = read_routes(client)
    out = []
    for site in args.site:
        now = current.get(site)
        if now is None:
            raise RefError(f"site {site}: no route yet; set one with `policy route --serve`")
        out.append(_shadowed(now, refs, args.reason, quiet=args.json))
    return _publish(args, out)


def _shadowed(now: Any, refs: list[Any], reason: str, *, quiet: bool) -> Any:
    """``now`` with ``refs`` in shadow (``rollout.canary.shadow_route``: an open canary stays
    open, and says so unless ``quiet``); a route that cannot hold them is one line."""
    from rollout.canary import shadow_route
    from rollout.refs import RefError

    try:
        route = shadow_route(now, refs, reason)
    except ValueError as error:
        raise RefError(str(error).splitlines()[0]) from None
    if now.canary is not None and not quiet:
        print(f"{now.site_id}: the canary against {now.canary.incumbent.label} stays open")
    return route


def run_rollback(args: argparse.Namespace) -> int:
    """The previous serving policy with its shadows (``rollout/rollback.py``): the canary's
    incumbent, else the latest earlier route that served another policy a gate did not fail."""
    from rollout.refs import RefError
    from rollout.rollback import canary_checks, plan_rollback
    from stream.routing import read_routes, route_records

    client = kafka_client(args)
    current = read_routes(client)
    out = []
    for site in args.site:
        now = current.get(site)
        if now is None:
            raise RefError(f"site {site}: no route to roll back")
        history = [r for _, r in route_records(client, site)]
        plan = plan_rollback(
            now, history, canary_checks(client, site), args.reason, force=args.force
        )
        if not args.json:
            print(f"{site}: {plan.describe()}")
        out.append(plan.route)
    return _publish(args, out)


def run_routes(args: argparse.Namespace) -> int:
    from stream.routing import read_routes

    routes = read_routes(kafka_client(args))
    if args.json:
        print_json([json.loads(route.model_dump_json()) for _, route in sorted(routes.items())])
        return 0
    for site, route in sorted(routes.items()):
        canary = "" if route.canary is None else f", canary vs {route.canary.incumbent.label}"
        shadows = ", ".join(r.label for r in route.shadows) or "none"
        print(
            f"{site}: revision {route.revision} ({route.action}) {route.serving.label} serves, "
            f"shadow {shadows}{canary}; {route.reason}"
        )
    return 0


def run_history(args: argparse.Namespace) -> int:
    from rollout.history import served_history, spans
    from rollout.refs import RefError

    rows, routes = served_history(kafka_client(args), args.site, args.day)
    if not rows and not routes:  # a mistyped site printed two empty headings and exit 0
        on = f" on {args.day}" if args.day else ""
        raise RefError(
            f"site {args.site}: no route and no decision{on} on the broker "
            "(chuteflow policy routes lists the routed sites)"
        )
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
