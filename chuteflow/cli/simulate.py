"""``chuteflow simulate``: one day on the twin under a policy, and its KPIs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from chuteflow.cli._shared import (
    POLICY_HELP,
    Subparsers,
    add_day_source,
    add_kafka_options,
    broker_given,
    format_number,
    kafka_client,
    load_day_without_groups,
    print_json,
)

NAME = "simulate"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="run one day on the twin and print its KPIs")
    add_day_source(parser, day_help="play a historical day file (CSV) as given")
    parser.add_argument("--policy", default="static", help=POLICY_HELP)
    parser.add_argument("--guardrails", help="guardrail set name or YAML (default: scenario's)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_kafka_options(
        parser,
        bootstrap_help="Kafka of the policy store, read only for a store version as --policy "
        "(default: bootstrap.servers of --kafka-config, else $KAFKA_BOOTSTRAP_SERVERS)",
    )
    parser.set_defaults(func=run)


def print_kpis(title: str, kpis: Mapping[str, object]) -> None:
    """A title and one ``key value`` line per KPI, numbers as every table shows them."""
    print(title)
    for key, value in kpis.items():
        print(f"  {key:22s} {format_number(key, value)}")


def run(args: argparse.Namespace) -> int:
    from chuteflow.progress import Progress
    from decision.build import build_engine
    from floor.site import load_site
    from rollout.refs import resolve_policy
    from twin.closed_loop import run_day

    scenario, groups, demand = load_day_without_groups(args)
    client = kafka_client(args) if broker_given(args) else None
    policy = resolve_policy(args.policy, scenario.name, client)
    if groups is None:
        print(
            f"chuteflow: note: {scenario.name} has no day-type groups yet: the policy plans "
            "with this day's own mix (hindsight); onboarding the site fits them",
            file=sys.stderr,
        )
    elif args.day is not None:  # a sampled group day fits its group by construction
        from twin.fit import day_fit

        warning = day_fit(scenario, groups, demand.interval_arrivals()).warning(args.day)
        if warning is not None:
            print(warning, file=sys.stderr)
    engine = build_engine(load_site(scenario, args.guardrails), policy.engine_policy)
    progress = Progress(scenario.n_intervals, f"simulate {scenario.name}")
    day = run_day(engine, demand, seed=args.seed, on_interval=lambda k: progress.update(k + 1))
    progress.close()
    kpis = day.kpis.to_dict()
    if args.json:
        print_json(kpis)
    else:
        print_kpis(f"{scenario.name}: {demand.label}, policy {engine.policy.name}", kpis)
    return 0
