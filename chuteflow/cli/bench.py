"""``chuteflow bench twin|decision|replay|train``: benchmarks that print their figure.

All four subcommands are registered here; each calls its package's ``bench_*`` function.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os

from chuteflow.cli._shared import Subparsers, add_kafka_options, kafka_client, print_result

NAME = "bench"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="benchmarks that print their figure")
    bench_sub = parser.add_subparsers(dest="bench_command", required=True)

    for name, help_text, days, func in (
        ("twin", "large-site days simulated per second", 20, run_twin),
        ("decision", "p50/p99 ms of one decision cycle", 3, run_decision),
    ):
        on_twin = bench_sub.add_parser(name, help=help_text)
        on_twin.add_argument("--scenario", default="large")
        on_twin.add_argument("--days", type=int, default=days)
        on_twin.add_argument("--seed", type=int, default=0)
        on_twin.add_argument("--json", action="store_true")
        on_twin.set_defaults(func=func)

    replay = bench_sub.add_parser("replay", help="a day through broker + worker: events/s, wall s")
    replay.add_argument("--scenario", default="large")
    replay.add_argument("--group", type=int, default=0)
    replay.add_argument("--seed", type=int, default=0)
    replay.add_argument("--policy", default="proportional")
    replay.add_argument("--intervals", type=int, default=None, help="only the first N intervals")
    add_kafka_options(
        replay,
        bootstrap_help="Kafka bootstrap servers (default: bootstrap.servers of --kafka-config, "
        "else $KAFKA_BOOTSTRAP_SERVERS, else a temporary local broker)",
    )
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(func=run_replay)

    shadow = bench_sub.add_parser(
        "shadow", help="shadow report vs simulate on 6 days, and the cost of one shadow"
    )
    shadow.add_argument("--scenario", default="large")
    shadow.add_argument("--served", default="proportional")
    shadow.add_argument("--shadow", default=None, help="ONNX policy (default: shipped drmarl)")
    shadow.add_argument("--seed", type=int, default=3)
    shadow.set_defaults(func=run_shadow)

    train = bench_sub.add_parser("train", help="env steps/s and s/episode per algorithm")
    train.add_argument("--scenario", default="large")
    train.add_argument("--episodes", type=int, default=2)
    train.add_argument("--json", action="store_true")
    train.set_defaults(func=run_train)


def run_shadow(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rollout.bench import bench_shadow

    shadow = args.shadow or str(
        Path(__file__).resolve().parents[2]
        / "decision"
        / "policies"
        / f"drmarl-{args.scenario}.onnx"
    )
    result = bench_shadow(args.scenario, args.served, shadow, args.seed)
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
    from twin.bench import bench_decision

    print_result(bench_decision(args.scenario, days=args.days, seed=args.seed), args.json)
    return 0


def run_replay(args: argparse.Namespace) -> int:
    """Against ``--bootstrap``, else ``--kafka-config``'s ``bootstrap.servers``, else
    ``$KAFKA_BOOTSTRAP_SERVERS`` (with the security settings of the file and ``KAFKA_*``),
    else a local Apache Kafka started in a temporary directory for this run and stopped
    afterwards."""
    from localkafka import temporary_broker
    from replay.bench import bench_replay
    from stream.clients import KafkaClientConfig

    given = args.bootstrap or args.kafka_config or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    with contextlib.ExitStack() as stack:
        if given:
            client = kafka_client(args)
        else:
            client = KafkaClientConfig(stack.enter_context(temporary_broker(timeout=90.0)))
        result = bench_replay(
            args.scenario, args.group, args.seed, client, args.intervals, args.policy
        )
    print_result(result, args.json, width=26)
    return 0


def run_train(args: argparse.Namespace) -> int:
    from training.bench import bench_train

    result = bench_train(args.scenario, args.episodes)
    print(json.dumps(result, sort_keys=True) if args.json else json.dumps(result, indent=2))
    return 0
