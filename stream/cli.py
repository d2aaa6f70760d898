"""``chuteflow worker``: run the streaming decision worker (a faust app) for one or more sites.

Wire into the main CLI with :func:`add_worker_commands`. Runnable on its own for tests and
before wiring: ``python -m stream.cli worker --scenario small``.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from stream.app import AppSettings, bootstrap_from_env

if TYPE_CHECKING:
    from stream.processor import SiteRuntime
    from twin.scenario import Scenario

    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def make_site(scenario: Scenario, policy: str, guardrails: str | None) -> SiteRuntime:
    """A site the worker serves: tracker layout, engine and the day-type groups' shares."""
    from decision.guardrails import load_guardrails
    from decision.policies import make_policy
    from decision.tracker import TrackerConfig
    from stream.processor import SiteRuntime
    from twin.closed_loop import make_engine, physics_of
    from twin.groups import default_groups

    rails = load_guardrails(guardrails or scenario.name)
    rails.check_against(scenario.destinations, scenario.eject_chutes)
    engine = make_engine(scenario, make_policy(policy, physics_of(scenario)), rails)
    groups = default_groups(scenario)

    def day_shares(group: int) -> object:
        if not 0 <= group < groups.probs.shape[0]:
            raise IndexError(group)
        return groups.expected_share(group)

    return SiteRuntime(
        config=TrackerConfig.from_scenario(scenario),
        engine=engine,
        day_shares=day_shares,  # type: ignore[arg-type]
        interval_minutes=scenario.interval_minutes,
    )


def cmd_worker(args: argparse.Namespace) -> int:
    import faust

    from stream.admin import ensure_topics
    from stream.agents import register
    from stream.app import make_app, make_table
    from stream.processor import StreamProcessor
    from twin.scenario import load_scenario

    if args.policy == "lookahead":
        print(
            "lookahead reads the day's true arrivals: evaluation only, not served", file=sys.stderr
        )
        return 2
    sites = {}
    for name in args.scenario or ["small"]:
        scenario = load_scenario(name)
        if scenario.site_id in sites:
            print(f"site {scenario.site_id} given twice", file=sys.stderr)
            return 2
        sites[scenario.site_id] = make_site(scenario, args.policy, args.guardrails)
    ensure_topics(args.bootstrap)
    settings = AppSettings(args.bootstrap, app_id=args.app_id, offset_reset=args.offset_reset)
    app = make_app(settings)
    table = make_table(app)
    processor = StreamProcessor(
        sites,
        stall_seconds=args.stall_seconds,
        live_grace_seconds=args.live_grace_seconds,
        worker_id=f"{socket.gethostname()}/{os.getpid()}",
    )
    register(app, processor, table, ready_file=Path(args.ready_file) if args.ready_file else None)
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0


def add_worker_commands(sub: SubParsers) -> None:
    """Register ``chuteflow worker``; it sets ``func(args) -> int`` like every command."""
    worker = sub.add_parser("worker", help="serve allocations from Kafka events (faust worker)")
    worker.add_argument(
        "--scenario",
        action="append",
        help="site to serve: small, large or a scenario YAML; repeat for several sites",
    )
    worker.add_argument("--policy", default="proportional", help="static, proportional or .onnx")
    worker.add_argument("--guardrails", help="guardrail set name or YAML (default: scenario's)")
    worker.add_argument(
        "--bootstrap",
        default=bootstrap_from_env(),
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )
    worker.add_argument("--app-id", default="chuteflow-worker", help="faust app / consumer group")
    worker.add_argument(
        "--offset-reset",
        choices=("earliest", "latest"),
        default="earliest",
        help="start of a group without committed offsets",
    )
    worker.add_argument(
        "--stall-seconds",
        type=float,
        default=30.0,
        help="close an interval whose announced records have not all arrived after this long",
    )
    worker.add_argument(
        "--live-grace-seconds",
        type=float,
        default=None,
        help="live floors: close an interval this long after its end without a close event",
    )
    worker.add_argument(
        "--ready-file",
        help="written after every rebalance (for tests): JSON with the pid and input partitions",
    )
    worker.add_argument("--loglevel", default="WARNING")
    worker.set_defaults(func=cmd_worker)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m stream.cli worker ...``."""
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(prog="chuteflow")
    add_worker_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
