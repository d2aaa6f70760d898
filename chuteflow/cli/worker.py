"""``chuteflow worker``: serve allocations from Kafka events (the faust worker)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chuteflow.cli._shared import Subparsers, env_bootstrap

NAME = "worker"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="serve allocations from Kafka events (faust worker)")
    parser.add_argument(
        "--scenario",
        action="append",
        help="site to serve: small, large or a scenario YAML; repeat for several sites",
    )
    parser.add_argument("--policy", default="proportional", help="static, proportional or .onnx")
    parser.add_argument("--guardrails", help="guardrail set name or YAML (default: scenario's)")
    parser.add_argument(
        "--bootstrap",
        default=env_bootstrap(),
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )
    parser.add_argument("--app-id", default="chuteflow-worker", help="faust app / consumer group")
    parser.add_argument(
        "--offset-reset",
        choices=("earliest", "latest"),
        default="earliest",
        help="start of a group without committed offsets",
    )
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=30.0,
        help="close an interval whose announced records have not all arrived after this long",
    )
    parser.add_argument(
        "--live-grace-seconds",
        type=float,
        default=None,
        help="live floors: close an interval this long after its end without a close event",
    )
    parser.add_argument(
        "--ready-file",
        help="written after every rebalance (for tests): JSON with the pid and input partitions",
    )
    parser.add_argument("--loglevel", default="WARNING")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from floor.scenario import load_scenario
    from stream.app import AppSettings
    from stream.worker import make_site, run_worker
    from stream.processor import SiteRuntime

    if args.policy == "lookahead":
        print(
            "lookahead reads the day's true arrivals: evaluation only, not served", file=sys.stderr
        )
        return 2
    sites: dict[str, SiteRuntime] = {}
    for name in args.scenario or ["small"]:
        scenario = load_scenario(name)
        if scenario.site_id in sites:
            print(f"site {scenario.site_id} given twice", file=sys.stderr)
            return 2
        sites[scenario.site_id] = make_site(scenario, args.policy, args.guardrails)
    run_worker(
        sites,
        AppSettings(args.bootstrap, app_id=args.app_id, offset_reset=args.offset_reset),
        stall_seconds=args.stall_seconds,
        live_grace_seconds=args.live_grace_seconds,
        ready_file=Path(args.ready_file) if args.ready_file else None,
        loglevel=args.loglevel,
    )
    return 0
