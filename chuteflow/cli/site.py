"""``chuteflow site``: bring your own site. ``site check`` reads a site file and its history and
reports coverage before anything runs; ``site synth`` makes a synthetic site to try it on.

Each subcommand is a ``(register, run)`` pair in :data:`SUBCOMMANDS`; a new one (``onboard``)
is one more entry. The work is in ``floor/site_file.py`` (the site file), ``twin/coverage.py``
and ``twin/split.py`` (history coverage and the time split) and ``twin/synth_site.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

from chuteflow.cli._shared import (
    Subparsers,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    print_json,
)
from chuteflow.cli.onboard import register_onboard

NAME = "site"


# --- site check -----------------------------------------------------------------------------


def register_check(sub: Subparsers) -> None:
    from twin.split import DEFAULT_HELDOUT_WEEKS, DEFAULT_VALIDATION_WEEKS

    check = sub.add_parser(
        "check",
        help="validate a site file and report its history's coverage (exit 2 if unusable)",
    )
    check.add_argument("--site", required=True, help="site file (YAML; docs/site-format.md)")
    check.add_argument(
        "--history", required=True, help="folder of day files (.csv, .csv.gz, .parquet)"
    )
    check.add_argument(
        "--heldout-weeks",
        type=positive_int,
        default=DEFAULT_HELDOUT_WEEKS,
        help="last weeks kept for the final evaluation",
    )
    check.add_argument(
        "--validation-weeks",
        type=positive_int,
        default=DEFAULT_VALIDATION_WEEKS,
        help="weeks before them for selecting candidates",
    )
    check.add_argument("--json", action="store_true", help="one JSON object on stdout")
    check.set_defaults(func=run_check)


def _describe_site(path: str) -> str:
    from floor.site_file import load_site_file

    site = load_site_file(path)
    s, rails = site.scenario, site.guardrails
    return (
        f"{path}: site {s.name} ({s.site_id}): {s.n_destinations} destinations, "
        f"{s.eject_chutes} eject chutes, {s.day_hours:g} h shift from "
        f"{s.day_start:%H:%M} UTC in {s.interval_minutes:g}-min intervals "
        f"({s.n_intervals} decisions), guardrails {rails.version}"
    )


def run_check(args: argparse.Namespace) -> int:
    """Print the site and the history's coverage; problems one line each on stderr."""
    from floor.site_file import load_site_file
    from twin.coverage import check_history

    site = load_site_file(args.site)
    coverage = check_history(site.scenario, args.history, args.heldout_weeks, args.validation_weeks)
    report = coverage.to_dict()
    if args.json:
        print_json({"site": args.site, **report})
    else:
        print(_describe_site(args.site))
        print(
            f"{args.history}: {report['days']} days {report['first']}..{report['last']} "
            f"in {report['files']} files, {report['rows']:,} rows, "
            f"mean {report['mean_daily_volume']:,.0f} packages/day"
        )
        closed = report["closed_weekdays"]
        print(f"  closed weekdays: {', '.join(closed) if closed else 'none'}")  # type: ignore[arg-type]
        split = coverage.split.to_dict()
        parts = []
        for key, label in (("fit", "fit"), ("validation", "validation"), ("heldout", "held-out")):
            window = split[key]
            assert isinstance(window, dict)
            span = f" {window['first']}..{window['last']}" if window["days"] else ""
            parts.append(f"{label} {window['days']} days{span}")
        print(f"  split: {'; '.join(parts)}")
    for warning in coverage.warnings():
        print(f"chuteflow: warning: {warning}", file=sys.stderr)
    problems = coverage.problems()
    for problem in problems:
        print(f"chuteflow: {args.history}: {problem}", file=sys.stderr)
    if not args.json:
        print("usable" if not problems else f"not usable: {len(problems)} problems")
    return 0 if not problems else 2


# --- site synth -----------------------------------------------------------------------------


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def register_synth(sub: Subparsers) -> None:
    from twin.history_files import HISTORY_FORMATS

    synth = sub.add_parser(
        "synth", help="write a synthetic site file and its multi-year history (deterministic)"
    )
    synth.add_argument("--out", required=True, help="folder: site.yaml, history/, synth.json")
    synth.add_argument("--destinations", type=positive_int, required=True, help="destinations")
    synth.add_argument(
        "--chutes", type=positive_int, required=True, help="eject chutes (may be < destinations)"
    )
    synth.add_argument("--shift-hours", type=positive_float, required=True, help="shift length")
    synth.add_argument(
        "--interval-minutes", type=positive_float, required=True, help="decision interval"
    )
    synth.add_argument(
        "--daily-volume", type=positive_float, required=True, help="typical day's packages"
    )
    synth.add_argument(
        "--seasonality",
        type=non_negative_float,
        default=1.0,
        help="scale of yearly and weekly swings (0 flat, 1 as the built-in sites)",
    )
    synth.add_argument("--years", type=positive_float, default=2.0, help="history length")
    synth.add_argument("--seed", type=non_negative_int, default=0, help="site and history seed")
    synth.add_argument(
        "--start", type=_iso_date, default=date(2023, 1, 2), help="first day, YYYY-MM-DD"
    )
    synth.add_argument("--format", choices=HISTORY_FORMATS, default="csv", help="day files")
    synth.add_argument("--name", help="site name and id (default: synth-<D>d-<C>c-s<seed>)")
    synth.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from chuteflow.progress import Progress
    from twin.synth_site import SynthParams, synth_scenario, synth_site

    params = SynthParams(
        destinations=args.destinations,
        chutes=args.chutes,
        shift_hours=args.shift_hours,
        interval_minutes=args.interval_minutes,
        daily_volume=args.daily_volume,
        seasonality=args.seasonality,
        years=args.years,
        seed=args.seed,
        start=args.start,
        file_format=args.format,
        name=args.name,
    )
    synth_scenario(params)  # refuse bad parameters before the progress bar appears
    progress = Progress(params.n_days, f"synth {params.site_name}")
    result = synth_site(params, Path(args.out), on_day=progress.update)
    progress.close()
    print(
        f"wrote {result.site_file} and {result.n_days} day files ({result.rows:,} packages) "
        f"to {result.history} in {result.seconds:.1f} s"
    )
    return 0


SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    register_check,
    register_synth,
    register_onboard,
)
"""Every ``site`` subcommand's register function (``onboard`` joins here), in help order."""


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="bring your own site: check a site and history, synth one")
    site_sub = parser.add_subparsers(dest="site_command", required=True)
    for register_sub in SUBCOMMANDS:
        register_sub(site_sub)
