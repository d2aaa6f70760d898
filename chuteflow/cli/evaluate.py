"""``chuteflow evaluate``: policies x day-type groups x seeds, as tables and plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from chuteflow.cli._shared import Subparsers

NAME = "evaluate"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="policies x groups x seeds: tables and plots")
    parser.add_argument("--scenario", default="large")
    parser.add_argument("--policies", default="static,proportional,lookahead")
    parser.add_argument("--groups", default="all", help="'all' or a comma list")
    parser.add_argument("--seeds", type=int, default=5, help="days sampled per group")
    parser.add_argument(
        "--days",
        choices=("group", "spike", "shifted"),
        default="group",
        help="group: samples of each group; spike: plus one destination at 4x its volume; "
        "shifted: 30%% of destinations swap volumes (outside every group)",
    )
    parser.add_argument("--guardrails", help="guardrail set name or YAML")
    parser.add_argument("--workers", type=int, default=None, help="processes (default 2)")
    parser.add_argument("--out", default="out/evaluate", help="report directory")
    parser.set_defaults(func=run)


def parse_groups(text: str, n_groups: int) -> list[int]:
    """``all`` or a comma list of group indices in ``0..n_groups - 1``."""
    from floor.errors import ChuteflowError

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


def run(args: argparse.Namespace) -> int:
    from chuteflow.progress import Progress
    from decision.build import build_engine
    from evaluation.demo import spike_study
    from evaluation.plots import group_bars
    from evaluation.report import summarize, write_report
    from evaluation.run import EVAL_SEED_BASE, run_all, specs_for
    from floor.daytypes import default_groups
    from floor.scenario import load_scenario
    from floor.site import load_site

    scenario = load_scenario(args.scenario)
    n_groups = default_groups(scenario).probs.shape[0]
    groups = parse_groups(args.groups, n_groups)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    site = load_site(scenario, args.guardrails)
    for policy in policies:
        build_engine(site, policy)  # fail fast on a bad name
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
