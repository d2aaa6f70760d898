"""``chuteflow worker``: serve allocations from Kafka events (the faust worker).

Which sites: each ``--scenario`` (small, large or a site YAML), and with ``--catalog`` every
site of the site catalog (``chuteflow site add``), followed while the worker runs. No
``--scenario`` means the default scenario without ``--catalog``, and only the catalog with it
(how a fleet's workers are started: ``chuteflow worker --catalog``). Every worker of one group
(``--app-id``) must be started with the same sites: the group spreads them by partition.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chuteflow.cli._shared import (
    DEFAULT_SCENARIO,
    POLICY_HELP,
    Subparsers,
    add_kafka_options,
    kafka_client,
    port,
)

NAME = "worker"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="serve allocations from Kafka events (faust worker)")
    parser.add_argument(
        "--scenario",
        action="append",
        help=f"site to serve: small, large or a scenario YAML; repeat for several sites "
        f"(default: {DEFAULT_SCENARIO}, none with --catalog)",
    )
    parser.add_argument(
        "--catalog",
        action="store_true",
        help="also serve every site of the site catalog (chuteflow site add), read at start "
        "and followed: a site added is served from its first day, a changed one from its next "
        "day, a removed one dropped with its state; without --scenario, only the catalog",
    )
    parser.add_argument(
        "--policy",
        default="proportional",
        help=POLICY_HELP.replace("lookahead", "not lookahead")
        + "; a store version is fetched into $CHUTEFLOW_POLICY_CACHE (default "
        "~/.cache/chuteflow/policies) and checked against its hash (default: proportional)",
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
        type=port,
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
    parser.add_argument(
        "--ready-max-lag",
        type=int,
        default=None,
        help="records an input partition may be behind its end with /readyz still 200 "
        "(default 1000)",
    )
    parser.add_argument(
        "--loglevel",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="the worker's own log: INFO has one line per decision per site and one per dead "
        "letter; DEBUG adds shadow decisions (default INFO)",
    )
    parser.add_argument(
        "--library-loglevel",
        default="WARNING",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="faust's, mode's and aiokafka's log (default WARNING)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines, or one JSON object per line (ts, level, logger, msg and the "
        "event's fields) for log shippers",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from contracts.limits import InputLimits
    from floor.scenario import load_scenario
    from rollout.refs import resolve_policy
    from stream.app import AppSettings
    from stream.policy_store import ArtifactFetcher
    from stream.processor import SiteRuntime
    from stream.routing import read_routes
    from stream.site_catalog import CatalogFollower
    from stream.worker import build_site, make_site, run_worker

    if args.policy == "lookahead":
        print(
            "lookahead reads the day's true arrivals: evaluation only, not served", file=sys.stderr
        )
        return 2
    client = kafka_client(args)  # a bad setting is one line before any site loads
    fetcher = ArtifactFetcher(client)
    fallback = None if args.fallback_policy == "none" else args.fallback_policy
    deadline_s = args.inference_deadline_ms / 1e3 if args.inference_deadline_ms > 0 else None
    sites: dict[str, SiteRuntime] = {}
    for name in args.scenario or ([] if args.catalog else [DEFAULT_SCENARIO]):
        scenario = load_scenario(name)
        if scenario.site_id in sites:
            print(f"site {scenario.site_id} given twice", file=sys.stderr)
            return 2
        # One grammar (rollout/refs.py): a store version is fetched and hash checked (then
        # served from the cache), a shipped short name (drmarl) is this scenario's file.
        policy = resolve_policy(args.policy, scenario.name, client).engine_policy
        sites[scenario.site_id] = make_site(
            scenario,
            policy,
            args.guardrails,
            fallback=fallback,
            deadline_s=deadline_s,
            fetch=fetcher,
        )
    catalog = None
    if args.catalog:
        catalog = CatalogFollower(
            client,
            lambda entry: build_site(
                entry, fetch=fetcher, fallback=fallback, deadline_s=deadline_s
            ),
            pinned=sites,
            routes=lambda: read_routes(client),
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
        log_format=args.log_format,
        library_loglevel=args.library_loglevel,
        ready_max_lag=args.ready_max_lag,
        catalog=catalog,
    )
    return 0
