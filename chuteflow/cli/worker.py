"""``chuteflow worker``: serve allocations from Kafka events (the faust worker)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chuteflow.cli._shared import Subparsers, add_kafka_options, kafka_client

NAME = "worker"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="serve allocations from Kafka events (faust worker)")
    parser.add_argument(
        "--scenario",
        action="append",
        help="site to serve: small, large or a scenario YAML; repeat for several sites",
    )
    parser.add_argument(
        "--policy",
        default="proportional",
        help="static, proportional, PATH.onnx, or a policy-store version: NAME@VERSION (a "
        "unique sha256 prefix of at least 8 hex digits will do) or sha256:HEX, fetched into "
        "$CHUTEFLOW_POLICY_CACHE (default ~/.cache/chuteflow/policies) and checked against "
        "its hash",
    )
    parser.add_argument("--guardrails", help="guardrail set name or YAML (default: scenario's)")
    parser.add_argument(
        "--fallback-policy",
        choices=("proportional", "static", "none"),
        default="proportional",
        help="decides an interval whose policy raises, returns NaN/inf or a wrong shape, or "
        "misses the inference deadline; the allocation says so (none: keep the previous "
        "allocation, repaired to the guardrails)",
    )
    parser.add_argument(
        "--inference-deadline-ms",
        type=float,
        default=200.0,
        help="a policy that gives no values within this long is replaced by the fallback for "
        "that interval (0: no deadline)",
    )
    add_kafka_options(parser)
    parser.add_argument("--app-id", default="chuteflow-worker", help="faust app / consumer group")
    parser.add_argument(
        "--offset-reset",
        choices=("earliest", "latest"),
        default="earliest",
        help="start of a group without committed offsets",
    )
    parser.add_argument(
        "--instance-id",
        default=None,
        help="static group member id: a restarted worker with the same id takes over at once "
        "(one per worker slot; default: none, dynamic membership)",
    )
    parser.add_argument(
        "--session-timeout-seconds",
        type=float,
        default=10.0,
        help="how long the group waits for a silent worker before another takes its sites",
    )
    parser.add_argument(
        "--event-time-skew-seconds",
        type=float,
        default=300.0,
        help="how far a floor event's time may lie outside the open interval before it is "
        "dead-lettered as implausible (contracts/limits.py)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics on this port (default: off)",
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
    from contracts.limits import InputLimits
    from decision.artifacts import PolicyArtifact
    from floor.scenario import load_scenario
    from stream.app import AppSettings
    from stream.policy_store import ArtifactFetcher, fetch_policy, is_store_ref
    from stream.processor import SiteRuntime
    from stream.worker import make_site, run_worker

    if args.policy == "lookahead":
        print(
            "lookahead reads the day's true arrivals: evaluation only, not served", file=sys.stderr
        )
        return 2
    client = kafka_client(args)  # a bad setting is one line before any site loads
    policy: str | PolicyArtifact = args.policy
    if is_store_ref(args.policy):
        # Fetched once, hash checked; every site's engine is made from these very bytes.
        policy = fetch_policy(client, args.policy)
    fetcher = ArtifactFetcher(client)
    fallback = None if args.fallback_policy == "none" else args.fallback_policy
    deadline_s = args.inference_deadline_ms / 1e3 if args.inference_deadline_ms > 0 else None
    sites: dict[str, SiteRuntime] = {}
    for name in args.scenario or ["small"]:
        scenario = load_scenario(name)
        if scenario.site_id in sites:
            print(f"site {scenario.site_id} given twice", file=sys.stderr)
            return 2
        sites[scenario.site_id] = make_site(
            scenario,
            policy,
            args.guardrails,
            fallback=fallback,
            deadline_s=deadline_s,
            fetch=fetcher,
        )
    run_worker(
        sites,
        AppSettings(
            client.bootstrap,
            client=client,
            app_id=args.app_id,
            offset_reset=args.offset_reset,
            instance_id=args.instance_id,
            session_timeout_s=args.session_timeout_seconds,
        ),
        stall_seconds=args.stall_seconds,
        live_grace_seconds=args.live_grace_seconds,
        ready_file=Path(args.ready_file) if args.ready_file else None,
        limits=InputLimits(event_time_skew_s=args.event_time_skew_seconds),
        metrics_port=args.metrics_port,
        prefetch=fetcher.prefetch,
        loglevel=args.loglevel,
    )
    return 0
