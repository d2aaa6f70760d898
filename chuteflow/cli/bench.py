"""``chuteflow bench twin|decision|replay|train``: benchmarks that print their figure.

All four subcommands are registered here; each calls its package's ``bench_*`` function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.clients import KafkaClientConfig

import argparse
import contextlib
import json
import os

from chuteflow.cli._shared import (
    POLICY_HELP,
    Subparsers,
    add_kafka_options,
    add_scenario,
    kafka_client,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    print_json,
    print_result,
)
from chuteflow.cli.bench_onboard import register_bench_onboard

TEMPORARY_BROKER_HELP = (
    "Kafka bootstrap servers (default: bootstrap.servers of --kafka-config, "
    "else $KAFKA_BOOTSTRAP_SERVERS, else a temporary local broker)"
)
"""The broker a bench that needs one uses: the one given, else one it starts and stops."""

NAME = "bench"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="benchmarks that print their figure")
    bench_sub = parser.add_subparsers(dest="bench_command", required=True)

    for name, help_text, days, func in (
        ("twin", "large-site days simulated per second", 20, run_twin),
        ("decision", "p50/p99 ms of one decision cycle", 3, run_decision),
    ):
        on_twin = bench_sub.add_parser(name, help=help_text)
        add_scenario(on_twin)
        on_twin.add_argument("--days", type=positive_int, default=days, help="days simulated")
        on_twin.add_argument("--seed", type=non_negative_int, default=0, help="first day's seed")
        if name == "decision":
            on_twin.add_argument(
                "--policy", default="proportional", help="the engine's; " + POLICY_HELP
            )
        on_twin.add_argument("--json", action="store_true", help="one JSON object on stdout")
        on_twin.set_defaults(func=func)

    replay = bench_sub.add_parser("replay", help="a day through broker + worker: events/s, wall s")
    add_scenario(replay)
    replay.add_argument("--group", type=non_negative_int, default=0, help="day-type group")
    replay.add_argument("--seed", type=non_negative_int, default=0, help="seed of the day")
    replay.add_argument("--policy", default="proportional", help="the worker's; " + POLICY_HELP)
    replay.add_argument(
        "--intervals", type=positive_int, default=None, help="only the first N intervals"
    )
    add_kafka_options(
        replay,
        bootstrap_help=TEMPORARY_BROKER_HELP,
    )
    replay.add_argument("--json", action="store_true", help="one JSON object on stdout")
    replay.set_defaults(func=run_replay)

    shadow = bench_sub.add_parser(
        "shadow", help="shadow report vs simulate on 6 days, and the cost of one shadow"
    )
    add_scenario(shadow)
    shadow.add_argument("--served", default="proportional", help="the policy serving the floor")
    shadow.add_argument("--shadow", default="drmarl", help="the policy in shadow; " + POLICY_HELP)
    shadow.add_argument("--seed", type=non_negative_int, default=3, help="the floor's twin seed")
    shadow.add_argument("--json", action="store_true", help="one JSON object on stdout")
    shadow.set_defaults(func=run_shadow)

    canary = bench_sub.add_parser(
        "canary",
        help="intervals a bad canary serves after its first failing check (before/mid-day)",
    )
    add_scenario(canary)
    canary.add_argument("--group", type=non_negative_int, default=0, help="day-type group")
    canary.add_argument("--seed", type=non_negative_int, default=0, help="seed of the day")
    canary.add_argument("--window", type=positive_int, default=12, help="the gate's window")
    canary.add_argument(
        "--run-for",
        type=positive_int,
        default=16,
        help="intervals replayed when opened before the day",
    )
    add_kafka_options(
        canary,
        bootstrap_help=TEMPORARY_BROKER_HELP,
    )
    canary.add_argument("--json", action="store_true", help="one JSON object on stdout")
    canary.set_defaults(func=run_canary)

    fleet = bench_sub.add_parser(
        "fleet",
        help="N sites' shifts at once through one broker and W workers: latency, on-time "
        "share, lag, CPU and memory per site (--kill-one: hand-over)",
    )
    fleet.add_argument("--sites", type=positive_int, default=100, help="sites (a third each size)")
    fleet.add_argument("--workers", type=positive_int, default=3, help="worker processes")
    fleet.add_argument(
        "--pace", type=pace_factor, default=10.0, help="times real time, or max (default 10)"
    )
    fleet.add_argument(
        "--hours", type=positive_float, default=1.0, help="hours of each shift replayed"
    )
    fleet.add_argument(
        "--deadline-seconds",
        type=non_negative_float,
        default=10.0,
        help="floor seconds after its interval starts an allocation is due (default 10: "
        "1 s of wall time at 10x)",
    )
    fleet.add_argument(
        "--kill-one", action="store_true", help="SIGKILL one worker mid-shift; report hand-over"
    )
    fleet.add_argument(
        "--session-timeout-seconds",
        type=positive_float,
        default=6.0,
        help="the workers' group session timeout (Kafka's minimum: 6)",
    )
    fleet.add_argument(
        "--driver-nice",
        type=non_negative_int,
        default=10,
        help="niceness of the replay driver (the N floors) during the replay; the broker and "
        "workers keep 0 (default 10; 0: share the CPU equally)",
    )
    fleet.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="measure from cold: no warm-up replay of other sites before the measured ones",
    )
    fleet.add_argument("--seed", type=non_negative_int, default=0, help="site i replays seed+i")
    fleet.add_argument("--policy", default="proportional", help="the workers'; " + POLICY_HELP)
    add_kafka_options(fleet, bootstrap_help=TEMPORARY_BROKER_HELP)
    fleet.add_argument("--json", action="store_true", help="one JSON object on stdout")
    fleet.set_defaults(func=run_fleet)

    train = bench_sub.add_parser("train", help="env steps/s and s/episode per algorithm")
    add_scenario(train)
    train.add_argument("--episodes", type=positive_int, default=2, help="episodes per algorithm")
    train.add_argument("--json", action="store_true", help="one JSON object on stdout")
    train.set_defaults(func=run_train)

    register_bench_onboard(bench_sub)


def run_canary(args: argparse.Namespace) -> int:
    """``chuteflow/canary_bench.py`` against the broker given, else a temporary local one."""
    from chuteflow.canary_bench import bench_canary

    with contextlib.ExitStack() as stack:
        client = _bench_client(args, stack)
        result = bench_canary(
            client,
            args.scenario,
            seed=args.seed,
            group=args.group,
            window=args.window,
            run_for=args.run_for,
        )
    if args.json:
        print_json(result)
    else:
        print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def run_shadow(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from floor.scenario import load_scenario
    from rollout.bench import bench_shadow
    from rollout.refs import resolve_policy

    name = load_scenario(args.scenario).name
    served = str(resolve_policy(args.served, name).engine_policy)
    shadow = str(resolve_policy(args.shadow, name).engine_policy)
    result = bench_shadow(args.scenario, served, shadow, args.seed)
    if args.json:
        print_json(
            {"days": [asdict(day) for day in result["days"]], "overhead": result["overhead"]}
        )
        return 0
    print(f"{'day':28s} {'report P':>9s} {'report Q':>9s} {'simulate Q, 5 seeds':>28s} in rank")
    for c in result["days"]:
        low, high = 100 * min(c.simulate_q), 100 * max(c.simulate_q)
        sims = f"{low:.2f}-{high:.2f} (mean {100 * sum(c.simulate_q) / 5:.2f})"
        print(
            f"{c.day:28s} {100 * c.report_p:8.2f}% {100 * c.report_q:8.2f}% {sims:>24s} "
            f"{'yes' if c.within else 'NO':>3s} {'ok' if c.ranking_agrees else 'NO':>5s}"
        )
    cost = result["overhead"]
    print(
        f"worker time per interval: {cost['ms_per_interval_served_alone']:.1f} ms served alone, "
        f"{cost['ms_per_interval_with_one_shadow']:.1f} ms with one shadow "
        f"(ratio {cost['ratio']:.2f}); same allocations: {bool(cost['same_allocations'])}"
    )
    return 0


def run_twin(args: argparse.Namespace) -> int:
    from twin.bench import bench_twin

    print_result(bench_twin(args.scenario, days=args.days, seed=args.seed), args.json)
    return 0


def run_decision(args: argparse.Namespace) -> int:
    from floor.scenario import load_scenario
    from rollout.refs import resolve_policy
    from twin.bench import bench_decision

    policy = resolve_policy(args.policy, load_scenario(args.scenario).name)
    result = bench_decision(
        args.scenario, days=args.days, seed=args.seed, policy=policy.engine_policy
    )
    print_result({"policy": args.policy, **result}, args.json)
    return 0


def run_replay(args: argparse.Namespace) -> int:
    """Against ``--bootstrap``, else ``--kafka-config``'s ``bootstrap.servers``, else
    ``$KAFKA_BOOTSTRAP_SERVERS`` (with the security settings of the file and ``KAFKA_*``),
    else a local Apache Kafka started in a temporary directory for this run and stopped
    afterwards."""
    from replay.bench import bench_replay

    with contextlib.ExitStack() as stack:
        client = _bench_client(args, stack)
        result = bench_replay(
            args.scenario, args.group, args.seed, client, args.intervals, args.policy
        )
    print_result(result, args.json, width=26)
    return 0


def run_train(args: argparse.Namespace) -> int:
    from training.bench import bench_train

    result = bench_train(args.scenario, args.episodes)
    if args.json:
        print_json(result)
    else:
        print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def pace_factor(text: str) -> float | None:
    """``--pace``: a positive factor, or ``max`` (None: as fast as the loops go)."""
    if text == "max":
        return None
    return positive_float(text)


def run_fleet(args: argparse.Namespace) -> int:
    """``chuteflow/fleet_bench.py`` against the broker given, else a temporary local one."""
    import sys

    from chuteflow.fleet_bench import FleetSettings, bench_fleet, format_fleet

    settings = FleetSettings(
        sites=args.sites,
        workers=args.workers,
        pace=args.pace,
        hours=args.hours,
        deadline_seconds=args.deadline_seconds,
        kill_one=args.kill_one,
        seed=args.seed,
        policy=args.policy,
        session_timeout_seconds=args.session_timeout_seconds,
        driver_nice=args.driver_nice,
        warmup=args.warmup,
    )
    with contextlib.ExitStack() as stack:
        client = _bench_client(args, stack)
        result = bench_fleet(
            settings, client, progress=lambda text: print(text, file=sys.stderr, flush=True)
        )
    if args.json:
        print_json(result)
    else:
        print(format_fleet(result))
    return 0


def _bench_client(args: argparse.Namespace, stack: contextlib.ExitStack) -> KafkaClientConfig:
    """The broker the flags or ``KAFKA_BOOTSTRAP_SERVERS`` give, else a temporary local one
    that ``stack`` stops (the benches that need a broker share this)."""
    from localkafka import temporary_broker
    from stream.clients import KafkaClientConfig

    given = args.bootstrap or args.kafka_config or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        return kafka_client(args)
    return KafkaClientConfig(stack.enter_context(temporary_broker(timeout=90.0)))
