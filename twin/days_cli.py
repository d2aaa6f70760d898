"""What ``chuteflow days`` does: write a synthetic history as day files, fit day-type groups
from a folder of them.

Argument parsing lives in :mod:`chuteflow.cli.days`. Every user-fixable problem (bad day file,
unknown scenario, empty folder) is raised as a ``ChuteflowError`` subclass, which
``chuteflow.cli.main`` prints as one line and exits 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from floor.errors import ChuteflowError
from floor.files import output_folder
from floor.scenario import Scenario, ScenarioError, load_scenario

if TYPE_CHECKING:
    from floor.daytypes import DayTypeGroups


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


def _day_files(record: Any) -> set[str]:
    """What an earlier ``days generate`` manifest says its run wrote."""
    return {str(entry["file"]) for entry in record["entries"]}


def generate_days(
    scenario_name: str, start: str, days: int, out: Path, seed: int, gzip: bool
) -> dict[str, Any]:
    """Write one day file per synthetic day plus ``manifest.json`` (flags per day) to ``out``,
    whole: built beside it and swapped in (:func:`floor.files.output_folder`), so a rerun
    replaces an earlier run's days instead of mixing with them.

    ``start`` is the first day as ``YYYY-MM-DD``. Returns the manifest.
    """
    from twin.dayfile import write_day_csv
    from twin.history import SPIKE_RATE, flagged_days, generate_history

    scenario = _scenario(scenario_name)
    if days < 1:
        raise DaysCommandError("--days must be at least 1")
    first = _start(start)
    suffix = ".csv.gz" if gzip else ".csv"
    entries: list[dict[str, Any]] = []
    with output_folder(out, "manifest.json", _day_files) as building:
        for day in generate_history(scenario, first, days, seed):
            path = write_day_csv(
                day, building / f"{day.label}{suffix}", seed=seed, scenario=scenario
            )
            entries.append({"file": path.name, **day.flags()})
        manifest = {
            "scenario": scenario.name,
            "seed": seed,
            "start": start,
            "days": days,
            "spike_rate": SPIKE_RATE,
            **flagged_days(entries),
        }
        (building / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


@dataclass(frozen=True)
class FittedGroups:
    """Groups fitted from a folder of day files, and how many files they came from."""

    groups: DayTypeGroups
    n_days: int


def fit_groups_from_folder(
    scenario_name: str, folder: Path, n_groups: int | None, seed: int, out: Path
) -> FittedGroups:
    """Read every day file in ``folder``, fit day-type groups and save them to ``out``.

    ``n_groups`` defaults to the scenario's ``default_groups``.
    """
    from twin.dayfile import is_day_file, read_day_counts
    from twin.groups import fit_groups

    scenario = _scenario(scenario_name)
    if not folder.is_dir():
        raise DaysCommandError(f"{folder}: not a folder of day files")
    files = sorted(p for p in folder.iterdir() if is_day_file(p))
    if not files:
        raise DaysCommandError(f"{folder}: no .csv or .csv.gz day files")
    if n_groups is None:
        n_groups = scenario.default_groups
    if not 1 <= n_groups <= len(files):
        raise DaysCommandError(f"--groups {n_groups}: need between 1 and {len(files)} groups")
    labels, counts = [], []
    for path in files:
        label, matrix = read_day_counts(path, scenario)
        labels.append(label)
        counts.append(matrix)
    groups = fit_groups(counts, labels, n_groups, seed, scenario_name=scenario.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    groups.save(out)
    return FittedGroups(groups, len(files))


__all__ = ["DaysCommandError", "FittedGroups", "fit_groups_from_folder", "generate_days"]
