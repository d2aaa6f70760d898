"""``chuteflow replay`` and ``chuteflow bench replay``: a day through Kafka and the worker.

Wire into the main CLI with :func:`add_replay_commands` (after the ``bench`` group exists).
Runnable on its own: ``python -m replay.cli replay --scenario small --group 0 --seed 1``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twin.day import DayDemand
    from twin.groups import DayTypeGroups
    from twin.scenario import Scenario

    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--speed: a factor > 0 or 'max'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("--speed: a factor > 0 or 'max'")
    return value


def _day(args: argparse.Namespace) -> tuple[Scenario, DayTypeGroups, DayDemand]:
    from chuteflow.errors import ChuteflowError
    from twin.dayfile import read_day_csv
    from twin.groups import default_groups, sample_day
    from twin.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    if getattr(args, "site", None) and args.site != scenario.site_id:
        scenario = scenario.model_copy(update={"site_id": args.site})
    groups = default_groups(scenario)
    if getattr(args, "day", None) is not None:
        return scenario, groups, read_day_csv(Path(args.day), scenario, groups=groups)
    n_groups = groups.probs.shape[0]
    if not 0 <= args.group < n_groups:
        raise ChuteflowError(f"--group {args.group}: {scenario.name} has groups 0..{n_groups - 1}")
    return scenario, groups, sample_day(groups, args.group, scenario, seed=args.seed)


def cmd_replay(args: argparse.Namespace) -> int:
    from replay.loop import day_type_group, replay_day

    scenario, groups, demand = _day(args)
    result = replay_day(
        demand,
        args.seed,
        args.bootstrap,
        day_type_group(groups, demand),
        speed=args.speed,
        allocation_timeout_s=args.timeout,
    )
    kpis = result.kpis.to_dict()
    if args.json:
        print(json.dumps(kpis, sort_keys=True))
    else:
        print(f"{scenario.site_id}: {demand.label} through Kafka")
        for key, value in kpis.items():
            print(f"  {key:22s} {value}")
        print(f"  {'replay':22s} {json.dumps(result.summary(), sort_keys=True)}")
    return 0


def bench_replay(
    scenario_name: str,
    group: int,
    seed: int,
    bootstrap: str | None,
    max_intervals: int | None = None,
    policy: str = "proportional",
) -> dict[str, object]:
    """Replay a day at max speed through a real broker and a worker process; time it.

    Without ``bootstrap`` a local Apache Kafka is started in a temporary directory and
    stopped afterwards. The worker is a fresh consumer group started before the clock runs.
    """
    from replay.loop import day_type_group, replay_day
    from replay.workers import running_worker
    from stream.admin import ensure_topics
    from stream.broker import broker_down, broker_up
    from twin.groups import default_groups, sample_day
    from twin.scenario import load_scenario

    scenario = load_scenario(scenario_name)
    groups = default_groups(scenario)
    demand = sample_day(groups, group, scenario, seed=seed)
    with tempfile.TemporaryDirectory(prefix="chuteflow-bench-") as tmp:
        state = Path(tmp) / "kafka"
        started_broker = bootstrap is None
        if bootstrap is None:
            bootstrap = broker_up(port=0, state_dir=state, timeout=90.0)
        try:
            ensure_topics(bootstrap)
            app_id = f"bench-{uuid.uuid4().hex[:8]}"
            with running_worker(
                bootstrap, [scenario_name], Path(tmp) / "worker", app_id=app_id, policy=policy
            ):
                t0 = time.monotonic()
                result = replay_day(
                    demand,
                    seed,
                    bootstrap,
                    day_type_group(groups, demand),
                    max_intervals=max_intervals,
                    allocation_timeout_s=600.0,
                )
                wall = time.monotonic() - t0
        finally:
            if started_broker:
                broker_down(state_dir=state)
    intervals = len(result.allocations)
    return {
        "scenario": scenario_name,
        "intervals": intervals,
        "of_intervals": scenario.n_intervals,
        "events": result.events_published,
        "wall_s": round(wall, 2),
        "events_per_s": round(result.events_published / wall, 1),
        "waiting_for_allocations_s": round(result.waited_seconds, 2),
        "kpis": result.kpis.to_dict() if intervals == scenario.n_intervals else None,
    }


def cmd_bench_replay(args: argparse.Namespace) -> int:
    import os

    bootstrap = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    result = bench_replay(
        args.scenario, args.group, args.seed, bootstrap, args.intervals, args.policy
    )
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for key, value in result.items():
            print(f"{key:26s} {value}")
    return 0


def add_replay_commands(sub: SubParsers) -> None:
    """Register ``chuteflow replay`` and, if the ``bench`` group exists, ``bench replay``."""
    import os

    replay = sub.add_parser("replay", help="publish a day to Kafka, closing the loop with the twin")
    replay.add_argument("--scenario", default="small", help="small, large or a scenario YAML")
    source = replay.add_mutually_exclusive_group(required=True)
    source.add_argument("--group", type=int, help="sample a day of this day-type group")
    source.add_argument("--day", help="play a historical day file (CSV)")
    replay.add_argument("--seed", type=int, default=0, help="seed of the sampled day and twin")
    replay.add_argument("--site", help="site id to publish as (default: the scenario's)")
    replay.add_argument(
        "--speed", type=_speed, default=None, help="event-time factor, or 'max' (lockstep)"
    )
    replay.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )
    replay.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait per allocation"
    )
    replay.add_argument("--json", action="store_true", help="the KPIs as one JSON object")
    replay.set_defaults(func=cmd_replay)

    bench = sub.choices.get("bench")
    if bench is None:
        return
    assert isinstance(bench, argparse.ArgumentParser)
    bench_sub = next(a for a in bench._actions if isinstance(a, argparse._SubParsersAction))
    b = bench_sub.add_parser("replay", help="a day through broker + worker: events/s, wall s")
    b.add_argument("--scenario", default="large")
    b.add_argument("--group", type=int, default=0)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--policy", default="proportional")
    b.add_argument("--intervals", type=int, default=None, help="only the first N intervals")
    b.add_argument(
        "--bootstrap", default=None, help="default: $KAFKA_BOOTSTRAP_SERVERS or a temp broker"
    )
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench_replay)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point with a scratch ``bench`` group, before the main CLI wires it."""
    parser = argparse.ArgumentParser(prog="chuteflow")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("bench").add_subparsers(dest="bench_command", required=True)
    add_replay_commands(sub)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
