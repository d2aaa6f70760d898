"""Historical-day files: one CSV per day of first inductions, package by package.

Format (``.csv`` or gzip-compressed ``.csv.gz``, UTF-8; or ``.parquet`` with the same columns,
read through ``twin/history_files.py``):

- a header row naming at least ``event_time``, ``package_id`` and ``destination``, in any
  order; other columns are allowed and ignored (a WCS export usually has more);
- one row per first induction: ``event_time`` in ISO-8601 with an explicit UTC offset
  (``2025-01-06T06:00:03Z`` or ``+00:00``; fractional seconds allowed), ``package_id``
  unique within the file, ``destination`` one of the scenario's destination ids;
- rows in non-decreasing ``event_time``; every event inside the scenario's day window, which
  starts at the scenario's day-start time of day on the date of the first event.

A file that breaks any rule raises ``DayFileError`` naming the file and line, e.g.
``days/x.csv:17: unknown destination 'D999'``; the CLI turns it into one line and exit 2.

``expected_share`` of a file day: the nearest day-type group's share when groups are given
(what a planner would have assumed for such a day), else the day's own counts normalized per
interval (hindsight).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from floor.daytypes import normalize_rows
from floor.errors import ChuteflowError
from floor.scenario import Scenario
from twin.day import DayDemand, PackageList
from twin.history import HistoricalDay, day_start_on, to_demand

if TYPE_CHECKING:
    from floor.daytypes import DayTypeGroups

REQUIRED_COLUMNS = ("event_time", "package_id", "destination")
DAY_FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
"""``.parquet`` (pyarrow, the ``onboard`` extra) holds the same columns; ``event_time`` may be
text or a UTC timestamp column (``twin/history_files.py``)."""


class DayFileError(ChuteflowError):
    """A day file that breaks the format; ``str`` is ``<path>:<line>: <message>``."""

    def __init__(self, path: str | Path, line: int, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        super().__init__(f"{self.path}:{line}: {message}")


def is_day_file(path: Path) -> bool:
    return path.is_file() and path.name.endswith(DAY_FILE_SUFFIXES)


@contextmanager
def _open_text(path: Path, mode: str) -> Iterator[IO[str]]:
    if path.name.endswith(".gz"):
        if mode == "w":
            # No name and mtime=0 in the header: the same day written twice gives the same bytes.
            with (
                path.open("wb") as raw,
                gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as zipped,
                io.TextIOWrapper(zipped, encoding="utf-8", newline="") as text,
            ):
                yield text
        else:
            with gzip.open(path, "rt", encoding="utf-8", newline="") as text:
                yield text
    else:
        with path.open(mode, encoding="utf-8", newline="") as text:
            yield text


def write_day_csv(
    day: DayDemand | HistoricalDay,
    path: str | Path,
    seed: int = 0,
    scenario: Scenario | None = None,
) -> Path:
    """Write one day as a day file; ``.gz`` in the name compresses it.

    Package-level records are written as they are when the day has them. Otherwise each
    package gets a seeded random second inside its tick (whole seconds, so reading the file
    back gives identical per-tick arrivals) and an id ``<site>-<YYYYMMDD>-<n>``, unique in
    the file. A ``HistoricalDay`` needs ``scenario`` and is spread over ticks with ``seed``.
    """
    out = Path(path)
    if isinstance(day, HistoricalDay):
        if scenario is None:
            raise ValueError("writing a HistoricalDay needs its scenario")
        day = to_demand(day, scenario, seed)
    offsets, destinations, ids = day_rows(day, seed)
    # Timestamps repeat a lot (hundreds of packages per second on a large site): format each
    # distinct offset once.
    unique, inverse = np.unique(offsets, return_inverse=True)
    whole = unique.astype(np.int64)
    if np.array_equal(whole, unique):  # whole seconds: numpy formats them ~10x faster
        base = np.datetime64(day.day_start.replace(tzinfo=None), "s")
        stamps = np.datetime_as_string(base + whole.astype("timedelta64[s]"), unit="s")
        texts = [f"{stamp}Z" for stamp in stamps.tolist()]
    else:
        texts = [_format_time(day.day_start + timedelta(seconds=float(o))) for o in unique]
    names = day.scenario.destinations
    out.parent.mkdir(parents=True, exist_ok=True)
    with _open_text(out, "w") as handle:
        handle.write("event_time,package_id,destination\n")
        handle.writelines(
            f"{texts[i]},{pid},{names[d]}\n"
            for i, pid, d in zip(inverse.tolist(), ids, destinations.tolist(), strict=True)
        )
    return out


def day_rows(
    day: DayDemand, seed: int = 0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], list[str]]:
    """(seconds after day start [N], destination index [N], package ids) of a day's rows, in
    time order: what :func:`write_day_csv` writes, for writers of other formats.

    Package-level records as they are when the day has them; otherwise each package gets a
    seeded whole second inside its tick and an id ``<site>-<YYYYMMDD>-<n>``.
    """
    s = day.scenario
    if day.packages is not None:
        offsets = day.packages.offset_seconds
        destinations = day.packages.destination
        ids: list[str] = list(day.packages.package_id)
    else:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF11E]))
        ticks, destinations = np.nonzero(day.arrivals)
        counts = day.arrivals[ticks, destinations]
        tick_col = np.repeat(ticks, counts)
        destinations = np.repeat(destinations, counts)
        whole = max(1, int(s.tick_seconds))
        raw = tick_col * s.tick_seconds + rng.integers(0, whole, size=tick_col.shape[0])
        order = np.argsort(raw, kind="stable")
        offsets, destinations = raw[order].astype(np.float64), destinations[order]
        stamp = day.day_start.strftime("%Y%m%d")
        ids = [f"{s.site_id}-{stamp}-{n:07d}" for n in range(offsets.shape[0])]
    return offsets.astype(np.float64), destinations.astype(np.int64), ids


def _format_time(moment: datetime) -> str:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def read_day_csv(
    path: str | Path, scenario: Scenario, groups: DayTypeGroups | None = None
) -> DayDemand:
    """Read and validate one day file into the twin's input, packages included."""
    source = Path(path)
    if not source.is_file():
        raise DayFileError(source, 0, "no such day file")
    try:
        if source.name.endswith(".parquet"):
            from twin.history_files import parquet_rows

            return _parse(_Rows(parquet_rows(source)), source, scenario, groups)
        with _open_text(source, "r") as handle:
            return _parse(csv.reader(handle), source, scenario, groups)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as error:
        raise DayFileError(source, 0, f"cannot read: {error}") from None


class _Rows:
    """Text rows of a non-CSV file with ``csv.reader``'s ``line_num`` (row number, header 1),
    so every format goes through one parser and one set of messages."""

    def __init__(self, rows: Iterator[list[str]]) -> None:
        self._rows = rows
        self.line_num = 0

    def __iter__(self) -> _Rows:
        return self

    def __next__(self) -> list[str]:
        row = next(self._rows)
        self.line_num += 1
        return row


class _RowReader(Protocol):
    """What the parser needs of ``csv.reader``: rows, and the number of the last one read."""

    @property
    def line_num(self) -> int: ...

    def __iter__(self) -> Iterator[list[str]]: ...

    def __next__(self) -> list[str]: ...


def _parse(
    reader: _RowReader,
    path: Path,
    scenario: Scenario,
    groups: DayTypeGroups | None,
) -> DayDemand:
    header = next(reader, None)
    if header is None:
        raise DayFileError(path, 1, "empty file: no header and no rows")
    columns = [c.strip() for c in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DayFileError(path, 1, f"missing column {', '.join(repr(m) for m in missing)}")
    time_col, id_col, dest_col = (columns.index(c) for c in REQUIRED_COLUMNS)
    width = max(time_col, id_col, dest_col) + 1
    index = scenario.destination_index
    seconds_of: dict[str, float] = {}
    seen: set[str] = set()
    offsets: list[float] = []
    dests: list[int] = []
    ids: list[str] = []
    day_start: datetime | None = None
    window = scenario.day_hours * 3600.0
    previous = -np.inf
    line = 1
    for row in reader:
        line = reader.line_num
        if not row:
            continue
        if len(row) < width:
            raise DayFileError(path, line, f"expected at least {width} fields, got {len(row)}")
        stamp = row[time_col]
        offset = seconds_of.get(stamp)
        if offset is None:
            moment = _parse_time(stamp, path, line)
            if day_start is None:
                day_start = day_start_on(scenario, moment.date())
            offset = (moment - day_start).total_seconds()
            seconds_of[stamp] = offset
        if not 0.0 <= offset < window:
            raise DayFileError(
                path, line, f"event at {stamp} outside the day window starting {day_start}"
            )
        if offset < previous:
            raise DayFileError(path, line, f"event_time {stamp} earlier than the row before")
        previous = offset
        destination = index.get(row[dest_col])
        if destination is None:
            raise DayFileError(path, line, f"unknown destination {row[dest_col]!r}")
        package_id = row[id_col]
        if package_id in seen:
            raise DayFileError(path, line, f"duplicate package id {package_id!r}")
        seen.add(package_id)
        offsets.append(offset)
        dests.append(destination)
        ids.append(package_id)
    if day_start is None:
        raise DayFileError(path, line + 1, "no rows after the header")
    offset_col = np.array(offsets, dtype=np.float64)
    dest_col_arr = np.array(dests, dtype=np.int64)
    tick_col = np.minimum(
        (offset_col // scenario.tick_seconds).astype(np.int64), scenario.n_ticks - 1
    )
    d = scenario.n_destinations
    arrivals = np.bincount(tick_col * d + dest_col_arr, minlength=scenario.n_ticks * d)
    arrivals = arrivals.reshape(scenario.n_ticks, d).astype(np.int64)
    demand_counts = arrivals.reshape(scenario.n_intervals, scenario.ticks_per_interval, d).sum(1)
    if groups is not None:
        from twin.groups import nearest_group

        groups.check_fits(scenario)
        share = groups.expected_share(nearest_group(groups, demand_counts))
    else:
        share = normalize_rows(demand_counts)
    return DayDemand(
        scenario=scenario,
        arrivals=arrivals,
        expected_share=share,
        day_start=day_start,
        label=str(path),
        packages=PackageList(tick_col, dest_col_arr, offset_col, tuple(ids)),
    )


def _parse_time(text: str, path: Path, line: int) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DayFileError(path, line, f"malformed timestamp {text!r}") from None
    offset = moment.utcoffset()
    if offset is None:
        raise DayFileError(path, line, f"timestamp {text!r} has no UTC offset")
    if offset:
        raise DayFileError(path, line, f"timestamp {text!r} is not UTC")
    return moment


def read_day_counts(path: str | Path, scenario: Scenario) -> tuple[str, npt.NDArray[np.int64]]:
    """(date label, [n_intervals, D] counts) of one day file, for fitting groups."""
    demand = read_day_csv(path, scenario)
    return demand.day_start.date().isoformat(), demand.interval_arrivals()
