"""A site's history as onboarding reads it: day files, their counts, and the split in time.

The split is the whole point of the held-out figures: the groups are fitted on the **fit**
days only, candidates are picked on the **validation** weeks (after them), and the
**held-out** weeks (the last ones) only judge; nothing is tuned on them.

There is one check and one split for the whole project: the history is read by
``twin.coverage.check_history`` (what ``chuteflow site check`` reports) and split by
``twin.split.split_history`` (calendar weeks, every operating weekday in each window).
Onboarding refuses what ``site check`` calls a problem, and also gaps (dates missing on an
operating weekday: ``site check`` warns) unless ``allow_gaps`` says they are known closures.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt

from floor.errors import ChuteflowError
from floor.scenario import Scenario
from twin.coverage import check_history
from twin.split import Split

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
    """Fit, validation and held-out days, in date order, disjoint and consecutive windows."""

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


@dataclass(frozen=True)
class History:
    """A checked history: every day, and its split."""

    days: list[HistoryDay]
    split: HistorySplit
    unread: tuple[str, ...] = ()
    """Entries of the folder that are not day files (``twin.history_files.unread_entries``)."""


def read_history(
    folder: Path,
    scenario: Scenario,
    heldout_weeks: int,
    validation_weeks: int,
    min_fit_days: int,
    allow_gaps: bool = False,
) -> History:
    """Every day of ``folder``, checked as ``site check`` checks it, and split in time.

    Raises:
        HistoryError: one line: the first problem ``site check`` would report (unreadable
            files, duplicate days or records, unknown destinations, out-of-shift events, too
            little history for the split), with a count of the others; or a gap.
    """
    strict = importlib.util.find_spec("pyarrow") is None  # a plain install: CSV days, row reader
    coverage = check_history(
        scenario, folder, heldout_weeks, validation_weeks, min_fit_days, strict=strict
    )
    problems = coverage.problems()
    if problems:
        more = f" (and {len(problems) - 1} more: chuteflow site check)" if len(problems) > 1 else ""
        raise HistoryError(f"{folder}: {problems[0]}{more}")
    gaps = coverage.gaps
    if gaps and not allow_gaps:
        first, last = gaps[0]
        missing = sum((b - a).days + 1 for a, b in gaps)
        raise HistoryError(
            f"{folder}: gap in history: {missing} day(s) missing on operating weekdays, first "
            f"{first}..{last}; add the missing day files, or pass --allow-gaps if they are "
            "closures"
        )
    days = [
        HistoryDay(scan.day, scan.path, scan.counts)
        for scan in sorted(coverage.scans, key=lambda s: s.day or date.min)
        if scan.day is not None
    ]
    return History(days, _split_days(days, coverage.split), coverage.unread)


def _split_days(days: list[HistoryDay], split: Split) -> HistorySplit:
    by_date = {d.day: d for d in days}
    return HistorySplit(
        tuple(by_date[d] for d in split.fit),
        tuple(by_date[d] for d in split.validation),
        tuple(by_date[d] for d in split.heldout),
    )


__all__ = [
    "History",
    "HistoryDay",
    "HistoryError",
    "HistorySplit",
    "read_history",
]
