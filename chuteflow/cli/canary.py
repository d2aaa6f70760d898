"""``chuteflow policy canary|gate|promote|abort``: a candidate served on some sites under a gate
(``rollout/gate.py``, ``rollout/watcher.py``).

``canary`` starts the gate watcher first and lets it catch up with the sites' current day, then
writes the canary routes, then watches until every gate decided (unless ``--no-watch``); a
canary opened before a site's first day waits for its ``day_started`` and gates that day.
``gate`` picks the watching up again (``--follow``: a long-lived watcher that also gates
canaries opened later).
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any

from chuteflow.cli._shared import Subparsers, kafka_client
from chuteflow.cli.routes import _POLICY_HELP, _common, _publish


def _watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario", action="append", help="scenario of a site (default: the built-in ones)"
    )
    parser.add_argument(
        "--timeout-seconds",
        type=float,
        default=3600.0,
        help="stop watching after this long (exit 3 if a canary is still open; default 3600)",
    )
    parser.add_argument(
        "--outage-limit-seconds",
        type=float,
        default=300.0,
        help="how long the broker may be unreachable before the watcher gives up (exit 4; "
        "default 300)",
    )
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=10.0,
        help="check a closed interval after this long even if its records are not all in "
        "(default 10)",
    )


def add_canary_commands(sub: Subparsers) -> None:
    """The canary subcommands of ``chuteflow policy``."""
    from rollout.exits import EXIT_CODES as codes

    canary = sub.add_parser(
        "canary",
        help="serve a candidate on some sites, gated on KPIs against the incumbent",
        epilog=codes,
    )
    canary.add_argument("policy", metavar="POLICY", help=_POLICY_HELP)
    canary.add_argument(
        "--site", "--sites", dest="sites", required=True, action="extend", nargs="+",
        help="site id; repeat for several",
    )  # fmt: skip
    canary.add_argument(
        "--incumbent", default=None, help="what it is compared with (default: what serves now)"
    )
    canary.add_argument("--gate", metavar="FILE.yaml", help="gate settings (CanaryGate fields)")
    canary.add_argument("--window", type=int, default=None, help="checks before it passes (8)")
    canary.add_argument("--max-ratio", type=float, default=None, help="x incumbent's rate (1.1)")
    canary.add_argument("--slack", type=float, default=None, help="absolute rate slack (0.002)")
    canary.add_argument("--failure-limit", type=int, default=None, help="failed checks to fail (2)")
    canary.add_argument(
        "--min-inductions", type=int, default=None, help="packages before checks start (500)"
    )
    canary.add_argument(
        "--promote-to", nargs="+", default=None, help="sites (or 'all') to serve it on a pass"
    )
    canary.add_argument("--no-watch", action="store_true", help="open it and return (exit 0)")
    _watch_options(canary)
    _common(canary, run_canary)

    gate = sub.add_parser(
        "gate", help="watch the open canaries' gates until they decide", epilog=codes
    )
    gate.add_argument(
        "--follow",
        action="store_true",
        help="keep watching (canaries opened later too) until --timeout-seconds",
    )
    _watch_options(gate)
    _common(gate, run_gate)

    for name, helptext, func in (
        (
            "promote",
            "end a site's canary now: the candidate serves (and its promote-to)",
            run_promote,
        ),
        ("abort", "end a site's canary now: the incumbent serves again", run_abort),
    ):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("--site", required=True, action="append", help="site id; repeat")
        cmd.add_argument("--reason", default=f"{name} by operator", help="written on the route")
        _common(cmd, func)


def _gate(args: argparse.Namespace) -> Any:
    import yaml

    from contracts.control import CanaryGate
    from rollout.refs import RefError

    fields: dict[str, Any] = {}
    if args.gate:
        try:
            loaded = yaml.safe_load(Path(args.gate).read_text())
        except (OSError, yaml.YAMLError) as error:
            raise RefError(f"{args.gate}: cannot read the gate settings ({error})") from None
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
    try:
        return CanaryGate.model_validate(fields, strict=False)
    except ValueError as error:
        first = str(error).splitlines()
        raise RefError(f"gate settings: {' '.join(first[:3])}") from None


def _gated_scenarios(args: argparse.Namespace, sites: list[str] | None) -> dict[str, Any]:
    """The layouts a gate judges ``sites`` (default: every one named) with, each with its
    day-type groups: a site without them is one line here, before any route goes out."""
    from floor.daytypes import default_groups
    from floor.errors import ChuteflowError
    from rollout.refs import RefError, scenarios_by_site

    scenarios = scenarios_by_site(args.scenario)
    if sites is not None:
        unknown = [s for s in sites if s not in scenarios]
        if unknown:
            raise RefError(
                f"site {unknown[0]!r}: not one of {', '.join(sorted(scenarios))} (give --scenario)"
            )
        scenarios = {s: scenarios[s] for s in sites}
    for site, scenario in scenarios.items():
        # the incumbent's twin plans its day from them: missing, the gate would fail at the
        # site's next day, after the candidate's route is out
        try:
            default_groups(scenario)
        except ChuteflowError as error:
            raise RefError(
                f"site {site}: the gate needs its day-type groups ({error}; an onboarded "
                "site's are beside the bundle's site.yaml: give that file as --scenario)"
            ) from None
    return scenarios


def _watcher(args: argparse.Namespace, client: Any, sites: list[str] | None) -> Any:
    from rollout.watcher import GateWatcher
    from stream.policy_store import ArtifactFetcher

    scenarios = _gated_scenarios(args, sites)

    def report(line: str) -> None:
        print(line, flush=True)

    return GateWatcher(
        client,
        scenarios,
        ArtifactFetcher(client),
        stall_s=args.stall_seconds,
        outage_limit_s=args.outage_limit_seconds,
        report=report,
    )


def run_canary(args: argparse.Namespace) -> int:
    from contracts.control import CanaryState
    from rollout.canary import canary_route
    from rollout.refs import RefError, policy_ref
    from stream.routing import read_routes

    client = kafka_client(args)
    candidate = policy_ref(client, args.policy)
    gate = _gate(args)
    sites = list(dict.fromkeys(args.sites))
    # every site's layout, --no-watch too: a canary no gate can judge (``policy gate`` knows
    # no more than this command) would leave its candidate serving unjudged
    watcher = None
    if args.no_watch:
        _gated_scenarios(args, sites)
    else:
        watcher = _watcher(args, client, sites)
    current = read_routes(client)
    out = []
    for site in sites:
        now = current.get(site)
        if args.incumbent is not None:
            incumbent = policy_ref(client, args.incumbent)
        elif now is not None:
            incumbent = now.serving
        else:
            raise RefError(f"site {site}: no route yet, so give --incumbent")
        if incumbent.key == candidate.key:
            raise RefError(f"site {site}: {candidate.label} already serves")
        if now is not None and now.canary is not None:
            raise RefError(f"site {site}: a canary is already open (policy promote|abort first)")
        revision = (0 if now is None else now.revision) + 1
        state = CanaryState(incumbent=incumbent, gate=gate, started_revision=revision)
        out.append(canary_route(now, site, candidate, incumbent, state))
    if watcher is None:
        return _publish(args, out)
    # current with the sites' day before the candidate serves a single interval (the
    # incumbents' twins included), and kept current while the routes go out and workers answer
    watcher.start(prepare={r.site_id: r.canary.incumbent for r in out if r.canary is not None})
    codes: list[int] = []
    failures: list[Exception] = []

    def publish() -> None:
        try:
            codes.append(_publish(args, out))
        except Exception as error:  # re-raised below, in the command's thread
            failures.append(error)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    watcher.keep_up_while(publisher.is_alive)
    if failures:
        watcher.close()
        raise failures[0]
    code = codes[0]
    if code != 0:
        watcher.close()
        return code
    waiting = [s for s in sites if s not in watcher.state.days]
    if waiting:
        print(f"{', '.join(waiting)}: no day yet; the gate waits for the first day_started")
    return _finish(watcher.run(set(sites), timeout_s=args.timeout_seconds))


def _finish(result: Any) -> int:
    from rollout.exits import EXIT_LOST, EXIT_TIMEOUT

    stream = sys.stderr if result.code in (EXIT_LOST, EXIT_TIMEOUT) else sys.stdout
    print(result.message, file=stream, flush=True)
    return int(result.code)


def run_gate(args: argparse.Namespace) -> int:
    from stream.routing import read_routes

    client = kafka_client(args)
    watcher = _watcher(args, client, None)
    open_ = {s for s, r in read_routes(client).items() if r.canary is not None}
    unwatched = sorted(open_ - set(watcher.state.scenarios))
    if unwatched:  # open, and nobody here can judge them: never "no canary open"
        print(
            f"chuteflow: canary open on {', '.join(unwatched)}, not watched: its layout is "
            "unknown here (give --scenario FILE for it)",
            file=sys.stderr,
        )
    sites = None if args.follow else open_ & set(watcher.state.scenarios)
    if sites is not None and not sites:
        if unwatched:
            return 2
        print("no canary open on the watched sites")
        return 0
    watcher.start()
    print(f"gate watching {', '.join(sorted(sites)) if sites else 'every site'}", flush=True)
    return _finish(watcher.run(sites, timeout_s=args.timeout_seconds, follow=args.follow))


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


__all__ = ["add_canary_commands"]
