"""``chuteflow days``: generate a synthetic history as day files, fit day-type groups from them.

Wiring: ``add_days_commands(subparsers)`` registers ``days generate`` and ``days fit-groups``
with ``set_defaults(func=...)``; each handler takes the parsed namespace and returns an exit
code. Every user-fixable problem (bad day file, unknown scenario, empty folder) is raised as a
``ChuteflowError`` subclass, which ``chuteflow.cli.main`` prints as one line and exits 2.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import Any

from chuteflow.errors import ChuteflowError
from twin.scenario import Scenario, ScenarioError, load_scenario


class DaysCommandError(ChuteflowError):
    """A ``days`` command that cannot run with the arguments given."""


def _scenario(name: str) -> Scenario:
    try:
        return load_scenario(name)
    except ScenarioError as error:
        raise DaysCommandError(str(error)) from None


def _start(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DaysCommandError(f"--start {text!r}: expected YYYY-MM-DD") from None


def cmd_generate(args: argparse.Namespace) -> int:
    """Write one day file per synthetic day plus ``manifest.json`` (flags per day)."""
    from twin.dayfile import write_day_csv
    from twin.history import SPIKE_RATE, generate_history

    scenario = _scenario(args.scenario)
    if args.days < 1:
        raise DaysCommandError("--days must be at least 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = ".csv.gz" if args.gzip else ".csv"
    entries: list[dict[str, Any]] = []
    for day in generate_history(scenario, _start(args.start), args.days, args.seed):
        path = write_day_csv(day, out / f"{day.label}{suffix}", seed=args.seed, scenario=scenario)
        entries.append({"file": path.name, **day.flags()})
    manifest = {
        "scenario": scenario.name,
        "seed": args.seed,
        "start": args.start,
        "days": args.days,
        "spike_rate": SPIKE_RATE,
        "spike_days": [e["date"] for e in entries if e["is_spike"]],
        "promo_days": [e["date"] for e in entries if e["is_promo"]],
        "entries": entries,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(entries)} day files to {out} ({len(manifest['spike_days'])} spike days)")
    return 0


def cmd_fit_groups(args: argparse.Namespace) -> int:
    """Read every day file in a folder, fit day-type groups, save them, print the table."""
    from twin.dayfile import is_day_file, read_day_counts
    from twin.groups import fit_groups, format_group_table

    scenario = _scenario(args.scenario)
    folder = Path(args.days)
    if not folder.is_dir():
        raise DaysCommandError(f"{folder}: not a folder of day files")
    files = sorted(p for p in folder.iterdir() if is_day_file(p))
    if not files:
        raise DaysCommandError(f"{folder}: no .csv or .csv.gz day files")
    n_groups = args.groups if args.groups is not None else scenario.default_groups
    if not 1 <= n_groups <= len(files):
        raise DaysCommandError(f"--groups {n_groups}: need between 1 and {len(files)} groups")
    labels, counts = [], []
    for path in files:
        label, matrix = read_day_counts(path, scenario)
        labels.append(label)
        counts.append(matrix)
    groups = fit_groups(counts, labels, n_groups, args.seed, scenario_name=scenario.name)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    groups.save(out)
    print(format_group_table(groups))
    print(f"wrote {n_groups} groups from {len(files)} days to {out}")
    return 0


def add_days_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``days generate`` and ``days fit-groups`` on the top-level subparsers."""
    days = sub.add_parser("days", help="historical day files and day-type groups")
    days_sub = days.add_subparsers(dest="days_command", required=True)

    generate = days_sub.add_parser("generate", help="write a synthetic history as day files")
    generate.add_argument("--scenario", required=True, help="small, large or a scenario YAML")
    generate.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    generate.add_argument("--days", type=int, required=True, help="number of days")
    generate.add_argument("--out", required=True, help="folder for YYYY-MM-DD.csv files")
    generate.add_argument("--seed", type=int, default=0, help="history seed")
    generate.add_argument("--gzip", action="store_true", help="write .csv.gz")
    generate.set_defaults(func=cmd_generate)

    fit = days_sub.add_parser("fit-groups", help="fit day-type groups from a folder of days")
    fit.add_argument("--scenario", required=True, help="small, large or a scenario YAML")
    fit.add_argument("--days", required=True, help="folder of .csv / .csv.gz day files")
    fit.add_argument(
        "--groups", type=int, default=None, help="number of groups (default: scenario's)"
    )
    fit.add_argument("--out", required=True, help="groups file to write (.npz)")
    fit.add_argument("--seed", type=int, default=0, help="k-means seed")
    fit.set_defaults(func=cmd_fit_groups)
