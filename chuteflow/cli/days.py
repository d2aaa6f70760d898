"""``chuteflow days generate`` and ``days fit-groups``: historical day files and day types."""

from __future__ import annotations

import argparse
from pathlib import Path

from chuteflow.cli._shared import Subparsers, add_scenario, non_negative_int, positive_int

NAME = "days"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="historical day files and day-type groups")
    days_sub = parser.add_subparsers(dest="days_command", required=True)

    generate = days_sub.add_parser("generate", help="write a synthetic history as day files")
    add_scenario(generate)
    generate.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    generate.add_argument("--days", type=positive_int, required=True, help="number of days")
    generate.add_argument("--out", required=True, help="folder for YYYY-MM-DD.csv files")
    generate.add_argument(
        "--seed",
        type=non_negative_int,
        default=None,
        help="history seed (default: the site's own history, the seed its shipped day-type "
        "groups were fitted on: 2025; another seed is another site with the same layout)",
    )
    generate.add_argument("--gzip", action="store_true", help="write .csv.gz")
    generate.set_defaults(func=run_generate)

    fit = days_sub.add_parser("fit-groups", help="fit day-type groups from a folder of days")
    add_scenario(fit)
    fit.add_argument("--days", required=True, help="folder of .csv / .csv.gz day files")
    fit.add_argument(
        "--groups", type=positive_int, default=None, help="number of groups (default: scenario's)"
    )
    fit.add_argument("--out", required=True, help="groups file to write (.npz)")
    fit.add_argument("--seed", type=non_negative_int, default=0, help="k-means seed")
    fit.set_defaults(func=run_fit_groups)


def site_history_seed(scenario_name: str) -> int:
    """The history seed of the scenario's shipped groups (``meta`` ``history_seed``); the
    shipped default (2025) for a scenario without groups or one that does not load (the
    generator then reports the scenario's own error)."""
    from floor.daytypes import default_groups
    from floor.errors import ChuteflowError
    from floor.scenario import load_scenario
    from twin.fit import site_history

    try:
        return site_history(default_groups(load_scenario(scenario_name))).seed
    except ChuteflowError:
        from twin.groups import DEFAULT_HISTORY_SEED

        return DEFAULT_HISTORY_SEED


def run_generate(args: argparse.Namespace) -> int:
    """Write one day file per synthetic day plus ``manifest.json`` (flags per day)."""
    from twin.days_cli import generate_days

    out = Path(args.out)
    seed = site_history_seed(args.scenario) if args.seed is None else args.seed
    manifest = generate_days(args.scenario, args.start, args.days, out, seed, args.gzip)
    print(
        f"wrote {len(manifest['entries'])} day files to {out} "
        f"({len(manifest['spike_days'])} spike days, history seed {seed})"
    )
    return 0


def run_fit_groups(args: argparse.Namespace) -> int:
    """Read every day file in a folder, fit day-type groups, save them, print the table."""
    from twin.days_cli import fit_groups_from_folder
    from twin.groups import format_group_table

    out = Path(args.out)
    fitted = fit_groups_from_folder(args.scenario, Path(args.days), args.groups, args.seed, out)
    print(format_group_table(fitted.groups))
    print(f"wrote {fitted.groups.n_groups} groups from {fitted.n_days} days to {out}")
    return 0
