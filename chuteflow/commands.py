"""Command handlers: parse nothing, validate inputs, call the packages, print results."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chuteflow.errors import ChuteflowError
from chuteflow.progress import Progress

if TYPE_CHECKING:
    from decision.engine import DecisionEngine
    from twin.day import DayDemand
    from twin.scenario import Scenario

    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _print_json(payload: object) -> None:
    print(json.dumps(payload, sort_keys=True))


def _print_result(result: Mapping[str, object], as_json: bool) -> None:
    if as_json:
        _print_json(result)
    else:
        for key, value in result.items():
            print(f"{key:20s} {value}")


def _print_kpis(title: str, kpis: Mapping[str, object]) -> None:
    print(title)
    for key, value in kpis.items():
        if key == "recirculation_rate" and isinstance(value, float):
            print(f"  {key:22s} {100 * value:.3f}%")
        elif isinstance(value, float):
            print(f"  {key:22s} {value:,.1f}")
        else:
            print(f"  {key:22s} {value}")


def _demand(args: argparse.Namespace) -> tuple[Scenario, DayDemand]:
    from twin.dayfile import read_day_csv
    from twin.groups import default_groups, sample_day
    from twin.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    groups = default_groups(scenario)
    if args.day is not None:
        return scenario, read_day_csv(Path(args.day), scenario, groups=groups)
    n_groups = groups.probs.shape[0]
    if not 0 <= args.group < n_groups:
        raise ChuteflowError(f"--group {args.group}: {scenario.name} has groups 0..{n_groups - 1}")
    return scenario, sample_day(groups, args.group, scenario, seed=args.seed)


def _policy_and_engine(
    scenario: Scenario, policy_name: str, guardrails_name: str | None
) -> DecisionEngine:
    from decision.guardrails import load_guardrails
    from decision.policies import make_policy
    from twin.closed_loop import make_engine, physics_of

    try:
        policy = make_policy(policy_name, physics_of(scenario))
    except ValueError as error:
        raise ChuteflowError(str(error)) from None
    guardrails = load_guardrails(guardrails_name or scenario.name)
    guardrails.check_against(scenario.destinations, scenario.eject_chutes)
    return make_engine(scenario, policy, guardrails)


def cmd_simulate(args: argparse.Namespace) -> int:
    from twin.closed_loop import run_day

    scenario, demand = _demand(args)
    engine = _policy_and_engine(scenario, args.policy, args.guardrails)
    progress = Progress(scenario.n_intervals, f"simulate {scenario.name}")
    run = run_day(engine, demand, seed=args.seed, on_interval=lambda k: progress.update(k + 1))
    progress.close()
    kpis = run.kpis.to_dict()
    if args.json:
        _print_json(kpis)
    else:
        _print_kpis(f"{scenario.name}: {demand.label}, policy {engine.policy.name}", kpis)
    return 0


def _add_day_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default="large", help="small, large or a scenario YAML")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--group", type=int, help="sample a day of this day-type group")
    source.add_argument("--day", help="play a historical day file (CSV) as given")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled day and twin")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from evaluation.demo import spike_study
    from evaluation.plots import group_bars
    from evaluation.report import summarize, write_report
    from evaluation.run import EVAL_SEED_BASE, run_all, specs_for
    from twin.groups import default_groups
    from twin.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    n_groups = default_groups(scenario).probs.shape[0]
    groups = _parse_groups(args.groups, n_groups)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    for policy in policies:
        _policy_and_engine(scenario, policy, args.guardrails)  # fail fast on a bad name
    specs = specs_for(
        args.scenario, policies, groups, args.seeds, args.guardrails or scenario.name, args.days
    )
    progress = Progress(len(specs), "evaluate")
    rows = run_all(specs, workers=args.workers, on_done=lambda done, _: progress.update(done))
    progress.close()
    summary = summarize(rows)
    out = Path(args.out)
    title = (
        f"{scenario.name}, {args.days} days: {', '.join(policies)} over {len(groups)} groups "
        f"x {args.seeds} seeds"
    )
    write_report(summary, rows, out, title)
    group_bars(summary, out / "recirculation_by_group.png")
    spike = spike_study(args.scenario, policies, seed=EVAL_SEED_BASE)
    spike.plot(out / "spike_day_allocation.png")
    print((out / "report.md").read_text())
    return 0


def _parse_groups(text: str, n_groups: int) -> list[int]:
    if text == "all":
        return list(range(n_groups))
    try:
        groups = [int(part) for part in text.split(",")]
    except ValueError:
        raise ChuteflowError(f"--groups {text!r}: use 'all' or a comma list of ints") from None
    bad = [g for g in groups if not 0 <= g < n_groups]
    if bad:
        raise ChuteflowError(f"--groups: {bad} outside 0..{n_groups - 1}")
    return groups


def cmd_demo(args: argparse.Namespace) -> int:
    from evaluation.demo import run_demo

    run_demo(Path(args.out), seed=args.seed)
    return 0


def cmd_bench_twin(args: argparse.Namespace) -> int:
    from twin.bench import bench_twin

    _print_result(bench_twin(args.scenario, days=args.days, seed=args.seed), args.json)
    return 0


def cmd_bench_decision(args: argparse.Namespace) -> int:
    from decision.bench import bench_decision

    _print_result(bench_decision(args.scenario, days=args.days, seed=args.seed), args.json)
    return 0


def add_commands(sub: SubParsers) -> None:
    simulate = sub.add_parser("simulate", help="run one day on the twin and print its KPIs")
    _add_day_source(simulate)
    simulate.add_argument(
        "--policy", default="static", help="static, proportional, lookahead or PATH.onnx"
    )
    simulate.add_argument("--guardrails", help="guardrail set name or YAML (default: scenario's)")
    simulate.add_argument("--json", action="store_true", help="one JSON object on stdout")
    simulate.set_defaults(func=cmd_simulate)

    evaluate = sub.add_parser("evaluate", help="policies x groups x seeds: tables and plots")
    evaluate.add_argument("--scenario", default="large")
    evaluate.add_argument("--policies", default="static,proportional,lookahead")
    evaluate.add_argument("--groups", default="all", help="'all' or a comma list")
    evaluate.add_argument("--seeds", type=int, default=5, help="days sampled per group")
    evaluate.add_argument(
        "--days",
        choices=("group", "spike", "shifted"),
        default="group",
        help="group: samples of each group; spike: plus one destination at 4x its volume; "
        "shifted: 30%% of destinations swap volumes (outside every group)",
    )
    evaluate.add_argument("--guardrails", help="guardrail set name or YAML")
    evaluate.add_argument("--workers", type=int, default=None, help="processes (default 2)")
    evaluate.add_argument("--out", default="out/evaluate", help="report directory")
    evaluate.set_defaults(func=cmd_evaluate)

    demo = sub.add_parser("demo", help="the main job: a spike day, static vs adaptive policies")
    demo.add_argument("--out", default="out/demo", help="where tables and plots go")
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="benchmarks that print their figure")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    for name, help_text, days, func in (
        ("twin", "large-site days simulated per second", 20, cmd_bench_twin),
        ("decision", "p50/p99 ms of one decision cycle", 3, cmd_bench_decision),
    ):
        parser = bench_sub.add_parser(name, help=help_text)
        parser.add_argument("--scenario", default="large")
        parser.add_argument("--days", type=int, default=days)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(func=func)

    _add_helper_commands(sub)


def _add_helper_commands(sub: SubParsers) -> None:
    from replay.cli import add_replay_commands
    from stream.broker import add_kafka_commands
    from stream.cli import add_worker_commands
    from training.cli import add_train_commands
    from twin.days_cli import add_days_commands

    add_days_commands(sub)
    add_kafka_commands(sub)
    add_worker_commands(sub)
    add_replay_commands(sub)
    add_train_commands(sub)


__all__ = ["add_commands", "np"]
