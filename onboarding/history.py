"""A site's history as onboarding reads it: day files, their counts, and the split in time.

The split is the whole point of the held-out figures: the groups are fitted on the **fit**
days only, candidates are picked on the **validation** days (the weeks after them), and the
**held-out** days (the last weeks) only judge; nothing is tuned on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt

from floor.errors import ChuteflowError
from floor.scenario import Scenario
from twin.day import DayDemand
from twin.dayfile import DAY_FILE_SUFFIXES, read_day_csv

IntArray = npt.NDArray[np.int64]


class HistoryError(ChuteflowError):
    """History that cannot be onboarded; the message names the folder or file and why."""


@dataclass(frozen=True)
class HistoryDay:
    """One day file: its date, path and [n_intervals, D] counts."""

    day: date
    path: Path
    counts: IntArray


@dataclass(frozen=True)
class HistorySplit:
    """Fit, validation and held-out days, in date order, disjoint and consecutive."""

    fit: tuple[HistoryDay, ...]
    validation: tuple[HistoryDay, ...]
    heldout: tuple[HistoryDay, ...]

    def dates(self) -> dict[str, dict[str, str | int]]:
        """First and last date and day count of each part (the manifest's ``split``)."""
        return {
            name: {
                "first": part[0].day.isoformat(),
                "last": part[-1].day.isoformat(),
                "days": len(part),
            }
            for name, part in (
                ("fit", self.fit),
                ("validation", self.validation),
                ("heldout", self.heldout),
            )
        }


def day_files(folder: Path) -> list[Path]:
    """The day files in ``folder`` (``.csv``, ``.csv.gz``), sorted by name."""
    if not folder.is_dir():
        raise HistoryError(f"{folder}: not a folder of day files")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.name.endswith(DAY_FILE_SUFFIXES)
    )
    if not files:
        raise HistoryError(f"{folder}: no day files ({', '.join(DAY_FILE_SUFFIXES)})")
    return files


def read_day(path: Path, scenario: Scenario) -> DayDemand:
    """One day file as the twin's input (packages and ticks as recorded)."""
    return read_day_csv(path, scenario)


def read_history(folder: Path, scenario: Scenario) -> list[HistoryDay]:
    """Every day of ``folder``, checked: one file per date, no missing dates in between.

    Raises:
        HistoryError: duplicates or gaps (named), or a day file that does not fit the site
            (``DayFileError``, naming the file, line and problem, is re-raised as it is).
    """
    days: dict[date, HistoryDay] = {}
    for path in day_files(folder):
        demand = read_day(path, scenario)
        day = demand.day_start.date()
        if day in days:
            raise HistoryError(f"{path}: duplicate day {day} (also {days[day].path.name})")
        days[day] = HistoryDay(day, path, demand.interval_arrivals())
    ordered = [days[d] for d in sorted(days)]
    for before, after in pairwise(ordered):
        if after.day - before.day != timedelta(days=1):
            missing = (after.day - before.day).days - 1
            raise HistoryError(
                f"{folder}: gap in history: {missing} day(s) missing between {before.day} and "
                f"{after.day}"
            )
    return ordered


def split_history(
    days: list[HistoryDay], heldout_days: int, validation_days: int, min_fit_days: int
) -> HistorySplit:
    """The last ``heldout_days`` held out, the ``validation_days`` before them for picking,
    everything earlier for fitting (at least ``min_fit_days``).

    Raises:
        HistoryError: too little history for the split (how much there is and is needed).
    """
    need = heldout_days + validation_days + min_fit_days
    if len(days) < need:
        raise HistoryError(
            f"too little history for the split: {len(days)} days, need at least {need} "
            f"({min_fit_days} fit + {validation_days} validation + {heldout_days} held out)"
        )
    cut_validation = len(days) - heldout_days - validation_days
    cut_heldout = len(days) - heldout_days
    return HistorySplit(
        tuple(days[:cut_validation]),
        tuple(days[cut_validation:cut_heldout]),
        tuple(days[cut_heldout:]),
    )


__all__ = [
    "HistoryDay",
    "HistoryError",
    "HistorySplit",
    "day_files",
    "read_day",
    "read_history",
    "split_history",
]
