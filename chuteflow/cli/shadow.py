"""``chuteflow shadow report``: each policy's counterfactual day beside the floor's
(``rollout/shadow.py``)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from chuteflow.cli._shared import Subparsers, add_kafka_options, kafka_client, print_json

NAME = "shadow"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="shadow comparison of policies on a live site's day")
    shadow_sub = parser.add_subparsers(dest="shadow_command", required=True)
    report = shadow_sub.add_parser(
        "report", help="recirculation, throughput, moves per policy: running or for the day"
    )
    report.add_argument("--site", required=True)
    report.add_argument(
        "--day",
        default=None,
        help="date YYYY-MM-DD or day key (default: the latest day run); a date that several "
        "day runs share (a day replayed twice) is refused with their list: pass --day-run",
    )
    report.add_argument(
        "--day-run",
        default=None,
        metavar="ID",
        help="the day run: its day_started id or day key (YYYY-MM-DD.<8 hex>, as in decision ids)",
    )
    report.add_argument("--scenario", action="append", help="scenario of the site")
    report.add_argument("--guardrails", default=None)
    report.add_argument(
        "--also", action="append", default=[], metavar="POLICY", help="another policy to run"
    )
    report.add_argument("--plot", default="out/shadow", help="folder for the plot")
    report.add_argument("--json", action="store_true")
    add_kafka_options(report)
    report.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from rollout.observe import read_site_day
    from rollout.plots import shadow_plot
    from rollout.refs import policy_ref, scenario_of
    from rollout.shadow import compare, format_table
    from stream.policy_store import ArtifactFetcher

    scenario = scenario_of(args.site, args.scenario)  # an unknown site: one line, no broker
    client = kafka_client(args)
    day = read_site_day(client, scenario, args.day, day_run=args.day_run)
    extra = [policy_ref(client, p, scenario.name) for p in args.also]
    result = compare(
        scenario, day, ArtifactFetcher(client), guardrails=args.guardrails, extra=extra
    )
    plot = shadow_plot(scenario, result, Path(args.plot) / f"{args.site}-{day.day_key}.png")
    if args.json:
        print_json(
            {
                "site_id": result.site_id,
                "day": result.day_key,
                "closed_through": result.closed_through,
                "complete": result.complete,
                "served": result.served,
                "rows": [asdict(row) for row in result.rows],
                "twin_error": result.twin_error,
                "plot": str(plot),
            }
        )
    else:
        print(format_table(result))
        print(f"plot: {plot}")
    return 0


__all__ = ["NAME", "register"]
