"""Coverage of a site's history before anything runs on it (``chuteflow site check``).

Every day file in the folder is scanned column-wise (``twin/history_files.py``); the report
says what the history covers (days, date range, gaps) and lists every problem at once rather
than stopping at the first bad row, so a data team can fix an export in one round.

What is fatal and what is a warning (``docs/site-format.md`` repeats this):

- **fatal** (the history is not usable; ``site check`` exits 2 with one line each): a file
  that cannot be read or lacks a column; two files for the same operating day (duplicate
  days); a package id twice in a day (duplicate records); destinations not in the site file;
  events outside the day's shift window, malformed or non-UTC timestamps, rows out of time
  order (the strict day reader would refuse the day); too little history for the
  fit / validation / held-out split (``twin/split.py``);
- **warning** (usable; printed, exit 0): gaps, i.e. dates missing inside the range on a
  weekday the site operates on. Sites close for holidays and exports miss a day; the split
  is by calendar weeks and its own minimums catch gaps that would starve a window. Weekdays
  with no day at all in the history are reported as closed weekdays, not as gaps.
  ``chuteflow site onboard`` refuses gaps unless ``--allow-gaps`` says they are known closures
  (a missing export would otherwise go unnoticed into the groups and the held-out weeks).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from floor.scenario import Scenario
from twin.dayfile import read_day_csv
from twin.history_files import (
    HISTORY_SUFFIXES,
    DayScan,
    list_day_files,
    scan_day_file,
    unread_entries,
)
from twin.split import (
    DEFAULT_HELDOUT_WEEKS,
    DEFAULT_VALIDATION_WEEKS,
    MIN_FIT_DAYS,
    WEEKDAYS,
    Split,
    split_history,
)

IntArray = npt.NDArray[np.int64]
EXAMPLES = 3
"""How many examples a problem line names (files, ids, dates) before ``...``."""


def _examples(items: list[str]) -> str:
    head = ", ".join(items[:EXAMPLES])
    return head + (f", ... ({len(items)} in all)" if len(items) > EXAMPLES else "")


def _ranges(days: list[date]) -> list[tuple[date, date]]:
    """Consecutive runs of ``days`` (sorted) as (first, last) pairs."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and day - runs[-1][1] == timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _span(run: tuple[date, date]) -> str:
    first, last = run
    return first.isoformat() if first == last else f"{first}..{last}"


@dataclass(frozen=True)
class Coverage:
    """What a history folder holds for a site, and what is wrong with it."""

    folder: Path
    scans: tuple[DayScan, ...]
    split: Split
    unread: tuple[str, ...] = ()
    """Entries of the folder that are not day files (``unread_entries``)."""

    @property
    def days(self) -> list[date]:
        """Distinct operating days with at least one readable event, sorted."""
        return sorted({s.day for s in self.scans if s.day is not None})

    @property
    def closed_weekdays(self) -> list[int]:
        """Weekdays (0 = Monday) with no day in the whole history: the site's closed days."""
        seen = {d.weekday() for d in self.days}
        return [w for w in range(7) if w not in seen] if self.days else []

    @property
    def gaps(self) -> list[tuple[date, date]]:
        """Missing operating dates inside the range, as (first, last) runs."""
        days = self.days
        if not days:
            return []
        present, closed = set(days), set(self.closed_weekdays)
        missing = []
        day = days[0]
        while day < days[-1]:
            if day not in present and day.weekday() not in closed:
                missing.append(day)
            day += timedelta(days=1)
        return _ranges(missing)

    @property
    def duplicate_days(self) -> dict[date, list[str]]:
        """Operating days that more than one file claims, with those files' names."""
        by_day: dict[date, list[str]] = defaultdict(list)
        for scan in self.scans:
            if scan.day is not None:
                by_day[scan.day].append(scan.path.name)
        return {day: names for day, names in sorted(by_day.items()) if len(names) > 1}

    @property
    def unknown_destinations(self) -> dict[str, int]:
        """Rows per destination id not in the site file, over the whole history."""
        total: dict[str, int] = defaultdict(int)
        for scan in self.scans:
            for name, rows in scan.unknown_destinations.items():
                total[name] += rows
        return dict(sorted(total.items(), key=lambda item: (-item[1], item[0])))

    def problems(self) -> list[str]:
        """One line per fatal problem (empty: the history is usable)."""
        out = []
        unreadable = [f"{s.path.name}:{s.error}" for s in self.scans if s.error is not None]
        if unreadable:
            out.append(f"{len(unreadable)} files cannot be used: {_examples(unreadable)}")
        for day, names in self.duplicate_days.items():
            out.append(f"duplicate day {day}: {', '.join(names)}")
        checks: list[tuple[str, Callable[[DayScan], int]]] = [
            ("duplicate records (package_id repeated within a day)", lambda s: s.duplicate_ids),
            ("events outside the shift", lambda s: s.out_of_shift),
            ("malformed or non-UTC event_time", lambda s: s.bad_times),
            ("rows out of event_time order", lambda s: s.unsorted),
        ]
        for what, rows_of in checks:
            hit = [s for s in self.scans if s.error is None and rows_of(s) > 0]
            if hit:
                rows = sum(rows_of(s) for s in hit)
                out.append(
                    f"{what}: {rows} rows in {len(hit)} days: "
                    + _examples([f"{s.path.name} ({rows_of(s)})" for s in hit])
                )
        unknown = self.unknown_destinations
        if unknown:
            days = [s.path.name for s in self.scans if s.unknown_destinations]
            out.append(
                "unknown destinations (not in the site file): "
                + _examples([f"{name} ({rows} rows)" for name, rows in unknown.items()])
                + f"; in {len(days)} days: "
                + _examples(days)
            )
        out.extend(self.split.problems())
        return out

    def warnings(self) -> list[str]:
        """One line per non-fatal finding."""
        out = []
        unread = unread_warning(list(self.unread))
        if unread:
            out.append(unread)
        gaps = self.gaps
        if gaps:
            missing = sum((last - first).days + 1 for first, last in gaps)
            out.append(
                f"gaps: {missing} missing days in {len(gaps)} ranges: "
                + _examples([_span(g) for g in gaps])
                + " (site onboard refuses them unless --allow-gaps says they are closures)"
            )
        return out

    @property
    def usable(self) -> bool:
        return not self.problems()

    def counts_by_day(self) -> dict[date, IntArray]:
        """[n_intervals, D] counts of every day (usable histories only have clean days)."""
        return {s.day: s.counts for s in self.scans if s.day is not None and s.error is None}

    def to_dict(self) -> dict[str, object]:
        """The report as JSON-ready data (``site check --json``)."""
        days = self.days
        volumes = [s.volume for s in self.scans if s.error is None and s.day is not None]
        return {
            "folder": str(self.folder),
            "files": len(self.scans),
            "days": len(days),
            "first": days[0].isoformat() if days else None,
            "last": days[-1].isoformat() if days else None,
            "rows": sum(s.rows for s in self.scans),
            "mean_daily_volume": round(float(np.mean(volumes)), 1) if volumes else 0.0,
            "closed_weekdays": [WEEKDAYS[w] for w in self.closed_weekdays],
            "gaps": [[first.isoformat(), last.isoformat()] for first, last in self.gaps],
            "duplicate_days": {d.isoformat(): n for d, n in self.duplicate_days.items()},
            "unknown_destinations": self.unknown_destinations,
            "out_of_shift_days": [s.path.name for s in self.scans if s.out_of_shift],
            "split": self.split.to_dict(),
            "usable": self.usable,
            "problems": self.problems(),
            "warnings": self.warnings(),
            "unread": list(self.unread),
        }


def check_history(
    scenario: Scenario,
    folder: str | Path,
    heldout_weeks: int = DEFAULT_HELDOUT_WEEKS,
    validation_weeks: int = DEFAULT_VALIDATION_WEEKS,
    min_fit_days: int = MIN_FIT_DAYS,
    *,
    strict: bool = False,
) -> Coverage:
    """Scan every day file in ``folder`` against ``scenario`` and split its days in time
    (``twin.split``: the same split ``chuteflow site onboard`` runs on).

    ``strict``: read each file with the twin's own row reader instead of the column scan, for
    an install without pyarrow (``chuteflow site onboard`` runs there, on CSV days): slower,
    and it stops at the first bad file (its one line) instead of listing every problem.

    Raises:
        HistoryFileError: ``folder`` is not a folder or holds no day file (nothing to report).
        DayFileError: ``strict`` and a day file the twin cannot read (file, line, why).
    """
    root = Path(folder)
    files = list_day_files(root)
    scans = tuple(
        _strict_scan(path, scenario) if strict else scan_day_file(path, scenario) for path in files
    )
    days = [s.day for s in scans if s.day is not None and s.error is None]
    split = split_history(days, heldout_weeks, validation_weeks, min_fit_days)
    return Coverage(root, scans, split, tuple(unread_entries(root)))


def unread_warning(unread: list[str]) -> str | None:
    """The one line that names a history folder's entries that are not read, if any."""
    if not unread:
        return None
    return (
        f"{len(unread)} entr{'y' if len(unread) == 1 else 'ies'} not read (day files end in "
        f"{', '.join(HISTORY_SUFFIXES)}, lower case; subfolders are not searched): "
        + _examples(unread)
    )


def _strict_scan(path: Path, scenario: Scenario) -> DayScan:
    """A day file through ``twin.dayfile.read_day_csv`` (raises on the first problem), as the
    scan's record of it."""
    demand = read_day_csv(path, scenario)
    counts = demand.interval_arrivals().astype(np.int64)
    return DayScan(path, demand.day_start.date(), int(counts.sum()), counts)


__all__ = ["Coverage", "check_history", "unread_warning"]
