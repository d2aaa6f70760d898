"""``chuteflow simulate``: one day on the twin under a policy, and its KPIs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from chuteflow.cli._shared import Subparsers, add_day_source, load_day, print_json

NAME = "simulate"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="run one day on the twin and print its KPIs")
    add_day_source(parser, "large", day_help="play a historical day file (CSV) as given")
    parser.add_argument(
        "--policy", default="static", help="static, proportional, lookahead or PATH.onnx"
    )
    parser.add_argument("--guardrails", help="guardrail set name or YAML (default: scenario's)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.set_defaults(func=run)


def _print_kpis(title: str, kpis: Mapping[str, object]) -> None:
    print(title)
    for key, value in kpis.items():
        if key == "recirculation_rate" and isinstance(value, float):
            print(f"  {key:22s} {100 * value:.3f}%")
        elif isinstance(value, float):
            print(f"  {key:22s} {value:,.1f}")
        else:
            print(f"  {key:22s} {value}")


def run(args: argparse.Namespace) -> int:
    from chuteflow.progress import Progress
    from decision.build import build_engine
    from floor.site import load_site
    from twin.closed_loop import run_day

    scenario, groups, demand = load_day(args)
    if args.day is not None:  # a sampled group day fits its group by construction
        from twin.fit import day_fit

        warning = day_fit(scenario, groups, demand.interval_arrivals()).warning(args.day)
        if warning is not None:
            print(warning, file=sys.stderr)
    engine = build_engine(load_site(scenario, args.guardrails), args.policy)
    progress = Progress(scenario.n_intervals, f"simulate {scenario.name}")
    day = run_day(engine, demand, seed=args.seed, on_interval=lambda k: progress.update(k + 1))
    progress.close()
    kpis = day.kpis.to_dict()
    if args.json:
        print_json(kpis)
    else:
        _print_kpis(f"{scenario.name}: {demand.label}, policy {engine.policy.name}", kpis)
    return 0
