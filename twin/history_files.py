"""A site's history as a folder of day files: CSV, gzipped CSV and Parquet, read alike.

One file per operating day with the columns of ``twin/dayfile.py`` (``event_time``,
``package_id``, ``destination``; others ignored). CSV is what a WCS exports; Parquet is what a
data team exports, often with ``event_time`` as a timestamp column rather than text: both are
accepted (a timestamp column must carry a time zone; it is read in UTC).

Two readers share this module's column access:

- :func:`parquet_rows` gives a Parquet file's rows as text, so ``twin.dayfile.read_day_csv``
  (strict, one day, package by package, for ``simulate --day``) reads every format with one
  set of rules;
- :func:`scan_day_file` reads a whole file column-wise (pyarrow) and, instead of stopping at
  the first bad row, counts every kind of problem and returns the day's [n_intervals, D]
  counts of its good rows. ``chuteflow site check`` and onboarding scan years of days with it
  in seconds (the per-row reader would take minutes).

pyarrow comes with the ``onboard`` extra (``pip install 'chuteflow[onboard]'``); without it,
a ``.parquet`` file or a scan is one line naming the extra, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from floor.errors import ChuteflowError
from floor.scenario import Scenario
from twin.history import day_start_on

IntArray = npt.NDArray[np.int64]

REQUIRED_COLUMNS = ("event_time", "package_id", "destination")
HISTORY_SUFFIXES = (".csv", ".csv.gz", ".parquet")
"""The day-file formats a history folder may hold (mixed freely)."""
HISTORY_FORMATS = ("csv", "csv.gz", "parquet")
"""Names of the formats, as ``--format`` takes them; each is also the file suffix."""
_UTC_SUFFIX = r"(Z|[+-]00:?00(:?00(\.0+)?)?)$"


class HistoryFileError(ChuteflowError):
    """A history folder or day file that cannot be read at all (one line, file named)."""


def pyarrow_modules() -> tuple[Any, Any, Any, Any]:
    """``(pyarrow, pyarrow.compute, pyarrow.csv, pyarrow.parquet)``, or one clear line."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq
    except ImportError:
        raise HistoryFileError(
            "reading history folders and .parquet day files needs pyarrow: "
            "pip install 'chuteflow[onboard]'"
        ) from None
    return pa, pc, pcsv, pq


def is_history_file(path: Path) -> bool:
    return path.is_file() and path.name.endswith(HISTORY_SUFFIXES)


OWN_RECORDS = frozenset({"manifest.json"})
"""Files chuteflow itself writes into a history folder (``days generate``'s record)."""


def unread_entries(folder: str | Path) -> list[str]:
    """What a history folder holds besides day files, by name (a folder with a trailing ``/``;
    hidden entries such as ``.DS_Store`` and chuteflow's own records aside): none of it is
    read.

    Why: an export named ``2023-05-01.CSV`` or ``days.zip``, or a month in a subfolder, is
    skipped by :func:`list_day_files`, and a history that silently lacks those days would
    still split and train. ``site check`` and ``site onboard`` name them."""
    root = Path(folder)
    if not root.is_dir():
        return []
    return sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in root.iterdir()
        if not p.name.startswith(".") and not is_history_file(p) and p.name not in OWN_RECORDS
    )


def list_day_files(folder: str | Path) -> list[Path]:
    """Every day file in ``folder`` (not its subfolders), sorted by name.

    Raises:
        HistoryFileError: not a folder, or no day file in it.
    """
    root = Path(folder)
    if not root.is_dir():
        raise HistoryFileError(f"{root}: not a folder of day files")
    files = sorted(p for p in root.iterdir() if is_history_file(p))
    if not files:
        raise HistoryFileError(f"{root}: no {', '.join(HISTORY_SUFFIXES)} day files")
    return files


def _read_table(path: Path) -> Any:
    """The file's three columns as a pyarrow table (CSV columns as text)."""
    pa, _, pcsv, pq = pyarrow_modules()
    if path.name.endswith(".parquet"):
        names = pq.read_schema(path).names
        _require_columns(path, names)
        return pq.read_table(path, columns=list(REQUIRED_COLUMNS))
    with pa.input_stream(str(path), compression="detect") as stream:
        first = stream.read(65536)
    header = first.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    raw_names = header.rstrip("\r\n").split(",")
    names = [name.strip() for name in raw_names]
    _require_columns(path, names)
    # Header names may carry spaces (the row reader strips them): select them as written.
    chosen = [raw_names[names.index(c)] for c in REQUIRED_COLUMNS]
    options = pcsv.ConvertOptions(
        column_types=dict.fromkeys(chosen, pa.string()), include_columns=chosen
    )
    table = pcsv.read_csv(path, convert_options=options)
    return table.rename_columns(list(REQUIRED_COLUMNS))


def _require_columns(path: Path, names: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise HistoryFileError(f"{path}:1: missing column {', '.join(repr(m) for m in missing)}")


def _time_text(column: Any) -> Any:
    """``event_time`` as text: a timestamp column is written out (``... 06:00:03.000000Z``;
    a naive one has no zone and fails the UTC rule like naive text would)."""
    pa, _, _, _ = pyarrow_modules()
    return column.cast(pa.string())


def parquet_rows(path: Path) -> Iterator[list[str]]:
    """A Parquet day file as text rows, header first (the strict reader's input)."""
    try:
        table = _read_table(path)
    except HistoryFileError:
        raise
    except Exception as error:  # pyarrow raises its own types for a corrupt file
        raise HistoryFileError(f"{path}:0: cannot read: {' '.join(str(error).split())}") from None
    yield list(REQUIRED_COLUMNS)
    times = _time_text(table.column("event_time")).to_pylist()
    ids = table.column("package_id").cast("string").to_pylist()
    dests = table.column("destination").cast("string").to_pylist()
    for row in zip(times, ids, dests, strict=True):
        yield ["" if value is None else value for value in row]


@dataclass(frozen=True)
class DayScan:
    """One day file, read column-wise: what it holds and what is wrong with it."""

    path: Path
    day: date | None
    """Operating day: the date of the first event (``None`` when no event could be read)."""
    rows: int
    counts: IntArray
    """[n_intervals, D] first inductions of the good rows (in shift, known destination)."""
    unknown_destinations: dict[str, int] = field(default_factory=dict)
    """Rows per destination id that is not in the site file."""
    out_of_shift: int = 0
    """Rows whose event_time falls outside the day's shift window."""
    duplicate_ids: int = 0
    """Rows whose package_id repeats an earlier row of the file."""
    unsorted: int = 0
    """Rows earlier than the row before (the strict reader needs time order)."""
    bad_times: int = 0
    """Rows whose event_time is malformed, has no zone or is not UTC."""
    error: str | None = None
    """Why the file could not be read at all (then everything else is empty)."""

    @property
    def volume(self) -> int:
        return int(self.counts.sum())


def scan_day_file(path: Path, scenario: Scenario) -> DayScan:
    """Read one day file of any format and count its problems (never raises for content)."""
    empty = np.zeros((scenario.n_intervals, scenario.n_destinations), dtype=np.int64)
    try:
        table = _read_table(path)
    except HistoryFileError as error:
        return DayScan(path, None, 0, empty, error=str(error).removeprefix(f"{path}:"))
    except Exception as error:  # a corrupt gzip/parquet, undecodable text: pyarrow's own types
        return DayScan(
            path, None, 0, empty, error=f"0: cannot read: {' '.join(str(error).split())}"
        )
    rows = table.num_rows
    if rows == 0:
        return DayScan(path, None, 0, empty, error="2: no rows after the header")
    micros, bad = _utc_micros(table.column("event_time"))
    good_time = ~bad
    if not good_time.any():
        return DayScan(
            path, None, rows, empty, bad_times=int(bad.sum()), error="2: no readable event_time"
        )
    first = int(micros[int(np.argmax(good_time))])
    day = (datetime(1970, 1, 1) + timedelta(microseconds=first)).date()
    start = day_start_on(scenario, day)
    start_us = int(start.timestamp()) * 1_000_000 + start.microsecond
    offset = (micros - start_us) / 1e6
    window = scenario.day_hours * 3600.0
    in_shift = good_time & (offset >= 0.0) & (offset < window)
    valid_offsets = offset[good_time]
    unsorted = int((np.diff(valid_offsets) < 0).sum())
    dest_index, unknown = _destinations(table.column("destination"), scenario)
    known = dest_index >= 0
    ids = table.column("package_id")
    _, pc, _, _ = pyarrow_modules()
    duplicates = rows - int(pc.count_distinct(ids, mode="all").as_py())
    keep = in_shift & known
    ticks = np.minimum(
        (offset[keep] // scenario.tick_seconds).astype(np.int64), scenario.n_ticks - 1
    )
    interval = ticks // scenario.ticks_per_interval
    d = scenario.n_destinations
    counts = np.bincount(interval * d + dest_index[keep], minlength=scenario.n_intervals * d)
    return DayScan(
        path=path,
        day=day,
        rows=rows,
        counts=counts.reshape(scenario.n_intervals, d).astype(np.int64),
        unknown_destinations=unknown,
        out_of_shift=int((good_time & ~in_shift).sum()),
        duplicate_ids=duplicates,
        unsorted=unsorted,
        bad_times=int(bad.sum()),
    )


def _utc_micros(column: Any) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """(microseconds since the epoch [N], unreadable [N]) of an ``event_time`` column.

    Text is parsed once per distinct value (a day repeats each second many times); a value is
    unreadable when it is malformed, has no zone, or has a zone other than UTC (the strict
    reader's rules).
    """
    pa, pc, _, _ = pyarrow_modules()
    if pa.types.is_timestamp(column.type):  # a typed column needs no parsing
        if column.type.tz is None:  # naive: no zone, like naive text
            n = len(column)
            return np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)
        values = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        missing = values.is_null().to_numpy(zero_copy_only=False)
        micros = values.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        return micros, np.asarray(missing, dtype=bool)
    text = _time_text(column).combine_chunks().dictionary_encode()
    values = text.dictionary
    utc = (
        pc.match_substring_regex(values, _UTC_SUFFIX)
        .fill_null(False)
        .to_numpy(zero_copy_only=False)
    )
    try:
        parsed = values.cast(pa.timestamp("us", tz="UTC"))
        ok = parsed.is_valid().to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:  # at least one malformed value: parse one by one
        stamps = []
        ok = np.zeros(len(values), dtype=bool)
        for i, value in enumerate(values.to_pylist()):
            try:
                stamps.append(pa.scalar(value).cast(pa.timestamp("us", tz="UTC")).as_py())
                ok[i] = True
            except (pa.ArrowInvalid, TypeError):
                stamps.append(None)
        parsed = pa.array(stamps, type=pa.timestamp("us", tz="UTC"))
    micros_of_value = parsed.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    good_value = ok & utc
    indices = text.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    present = indices >= 0
    safe = np.where(present, indices, 0)
    bad = ~present | ~good_value[safe]
    micros = np.where(bad, 0, micros_of_value[safe]).astype(np.int64)
    return micros, bad


def _destinations(column: Any, scenario: Scenario) -> tuple[IntArray, dict[str, int]]:
    """(destination index per row, -1 when unknown [N], rows per unknown id)."""
    encoded = column.cast("string").combine_chunks().dictionary_encode()
    names = encoded.dictionary.to_pylist()
    lookup = np.array(
        [scenario.destination_index.get(n, -1) if n is not None else -1 for n in names],
        dtype=np.int64,
    )
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    present = indices >= 0
    index = np.where(present, lookup[np.where(present, indices, 0)], -1)
    unknown: dict[str, int] = {}
    missing = np.flatnonzero(lookup < 0)
    if missing.size or not present.all():
        per_value = np.bincount(indices[present], minlength=len(names))
        for i in missing.tolist():
            if per_value[i]:
                unknown[str(names[i])] = int(per_value[i])
        if not present.all():
            unknown["<empty>"] = int((~present).sum())
    return index, unknown


def write_day_table(
    path: Path, event_micros: IntArray, package_ids: list[str], destinations: list[str]
) -> Path:
    """Write one day as Parquet: ``event_time`` a UTC timestamp column (as data teams export
    it), ids and destinations as text. No creation time in the file: same day, same bytes."""
    pa, _, _, pq = pyarrow_modules()
    table = pa.table(
        {
            "event_time": pa.array(event_micros, type=pa.timestamp("us", tz="UTC")),
            "package_id": pa.array(package_ids, type=pa.string()),
            "destination": pa.array(destinations, type=pa.string()).dictionary_encode(),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    return path


__all__ = [
    "HISTORY_FORMATS",
    "HISTORY_SUFFIXES",
    "REQUIRED_COLUMNS",
    "DayScan",
    "HistoryFileError",
    "is_history_file",
    "list_day_files",
    "parquet_rows",
    "pyarrow_modules",
    "scan_day_file",
    "unread_entries",
    "write_day_table",
]
