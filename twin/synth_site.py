"""A synthetic site from a few parameters: its site file and years of day files.

For tests, demos and people evaluating chuteflow without data. The layout is derived from the
parameters with the built-in sites' rules of thumb (reasons beside each below); the history is
the twin's own generator (``twin/history.py``: weekly and yearly seasonality, growth, a
drifting Zipf destination mix, promotions and spike days), so a synthetic site's days look
like ``small``'s and ``large``'s. Everything is a function of the parameters and the seed:
the same call writes the same bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np

from floor.errors import ChuteflowError
from floor.files import output_folder
from floor.scenario import Scenario
from floor.site_file import layout_problem, write_site_file
from floor.site_guardrails import SiteGuardrails
from twin.dayfile import day_rows, write_day_csv
from twin.history import flagged_days, generate_history, to_demand
from twin.history_files import HISTORY_FORMATS, write_day_table

DAY_START = time(6, 0)
"""Shift start (UTC) of every synthetic site, as on the built-in sites."""
STATION_PACKAGES_PER_HOUR = 1000.0
INDUCTION_HEADROOM = 2.5
"""Stations induct 2.5x the mean rate (small: 3000/h for 1200/h): room for waves, re-induction."""
CHUTE_PACKAGES_PER_MINUTE = 20.0


class SynthError(ChuteflowError):
    """Parameters that do not make a site (one line naming the flag)."""


@dataclass(frozen=True)
class SynthParams:
    """What ``chuteflow site synth`` takes; every field is a flag of the same name."""

    destinations: int
    """Destinations (agents); ids D01.. (or D001.. from 100)."""
    chutes: int
    """Eject chutes; fewer than destinations is allowed (chutes then follow the active ones)."""
    shift_hours: float
    """Length of the operating day."""
    interval_minutes: float
    """Decision interval; the shift must be a whole number of them."""
    daily_volume: float
    """Typical day's first inductions (the mean rate is this over the shift)."""
    seasonality: float = 1.0
    """Scale of the yearly and weekly swings (0 flat, 1 as the built-in sites)."""
    years: float = 2.0
    """History length; ``round(365 * years)`` consecutive days."""
    seed: int = 0
    start: date = date(2023, 1, 2)
    """First history day (a Monday near the generator's growth anchor)."""
    file_format: str = "csv"
    """csv, csv.gz or parquet."""
    name: str | None = None
    """Site name and site id (default ``synth-<D>d-<C>c-s<seed>``)."""

    @property
    def site_name(self) -> str:
        return self.name or f"synth-{self.destinations}d-{self.chutes}c-s{self.seed}"

    @property
    def n_days(self) -> int:
        return round(365 * self.years)


def _top_share(n_destinations: int) -> float:
    """The largest destination's base share under the generator's Zipf weights."""
    exponent, offset = (1.1, 2.0) if n_destinations > 40 else (1.0, 0.0)
    weights = (np.arange(1, n_destinations + 1) + offset) ** -exponent
    return float(weights[0] / weights.sum())


def synth_scenario(params: SynthParams) -> Scenario:
    """The site file's content for ``params``.

    Raises:
        SynthError: a parameter out of range, or a layout that cannot run a typical day.
    """
    p = params
    for flag, value, low in (
        ("--destinations", p.destinations, 1),
        ("--chutes", p.chutes, 1),
        ("--shift-hours", p.shift_hours, 1e-9),
        ("--interval-minutes", p.interval_minutes, 1e-9),
        ("--daily-volume", p.daily_volume, 1e-9),
        ("--years", p.years, 1e-9),
    ):
        if value < low:
            raise SynthError(f"{flag}: must be > 0 (got {value:g})")
    if p.seasonality < 0:
        raise SynthError(f"--seasonality: must be >= 0 (got {p.seasonality:g})")
    if p.shift_hours > 24:
        raise SynthError(f"--shift-hours: must be <= 24 (got {p.shift_hours:g})")
    if abs(p.interval_minutes * 2 - round(p.interval_minutes * 2)) > 1e-9:
        raise SynthError(
            f"--interval-minutes: must be a multiple of 0.5 (got {p.interval_minutes:g})"
        )
    intervals = p.shift_hours * 60 / p.interval_minutes
    if abs(intervals - round(intervals)) > 1e-9:
        raise SynthError(
            f"--shift-hours: {p.shift_hours:g} h is not a whole number of "
            f"{p.interval_minutes:g}-minute intervals"
        )
    if p.file_format not in HISTORY_FORMATS:
        raise SynthError(f"--format: one of {', '.join(HISTORY_FORMATS)} (got {p.file_format!r})")
    if p.n_days < 1:
        raise SynthError(f"--years: {p.years:g} years is less than one day")
    rate = p.daily_volume / p.shift_hours
    width = max(2, len(str(p.destinations)))
    # Action bound: 1.5x the top destination's proportional share of the floor (small: 4-5 of
    # 10), never fewer than 2 nor more than the floor.
    max_chutes = min(p.chutes, max(2, math.ceil(1.5 * _top_share(p.destinations) * p.chutes)))
    # Moves: about 1.2% of the floor per interval-minute, capped at 40% (small: 4 of 10 per
    # 30 min; large: 12 of 187 per 5 min).
    moves = max(1, math.ceil(p.chutes * min(0.4, 0.012 * p.interval_minutes)))
    # A chute per destination only where that leaves a third of the floor free to follow the
    # day; with fewer chutes than that no destination can be promised one (small: 0).
    minimum = 1 if p.chutes >= 1.5 * p.destinations else 0
    start = datetime.combine(p.start, DAY_START, UTC)
    try:
        scenario = Scenario(
            name=p.site_name,
            site_id=p.site_name,
            eject_chutes=p.chutes,
            recirculation_chutes=1,
            destinations=tuple(f"D{i + 1:0{width}d}" for i in range(p.destinations)),
            day_start=start,
            day_hours=p.shift_hours,
            interval_minutes=p.interval_minutes,
            tick_seconds=30,
            default_groups=max(4, min(21, round(math.sqrt(p.n_days / 7) * 1.5))),
            mean_packages_per_hour=rate,
            induction_stations=max(
                1, math.ceil(INDUCTION_HEADROOM * rate / STATION_PACKAGES_PER_HOUR)
            ),
            station_packages_per_hour=STATION_PACKAGES_PER_HOUR,
            travel_seconds=60,
            chute_packages_per_minute=CHUTE_PACKAGES_PER_MINUTE,
            container_capacity=100,
            swap_seconds=90,
            move_seconds=120,
            reinduction_seconds=120,
            chute_failures_per_hour=0.01,
            repair_minutes=20,
            max_attempts=3,
            max_chutes_per_destination=max_chutes,
            guardrails=SiteGuardrails(
                version=f"{p.site_name}-1",
                min_chutes_per_destination=minimum,
                max_chutes_per_destination=max_chutes,
                max_moves_per_interval=moves,
            ),
        )
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise SynthError(f"parameters make no valid site: {' '.join(str(error).split())}") from None
    problem = layout_problem(scenario)
    if problem is not None:
        raise SynthError(f"parameters make no valid site: {problem}")
    return scenario


@dataclass(frozen=True)
class SynthResult:
    site_file: Path
    history: Path
    manifest: Path
    n_days: int
    rows: int
    seconds: float


def _write_day(
    scenario: Scenario, demand_day: Any, folder: Path, seed: int, fmt: str
) -> tuple[Path, int]:
    path = folder / f"{demand_day.label}.{fmt}"
    demand = to_demand(demand_day, scenario, seed)
    if fmt == "parquet":
        offsets, destinations, ids = day_rows(demand, seed)
        start = demand.day_start
        start_us = int(start.timestamp()) * 1_000_000
        micros = start_us + np.round(offsets * 1e6).astype(np.int64)
        names = np.asarray(scenario.destinations, dtype=object)[destinations].tolist()
        write_day_table(path, micros, ids, names)
        return path, len(ids)
    write_day_csv(demand, path, seed=seed)
    return path, int(demand.arrivals.sum())


def _synth_files(record: Any) -> set[str]:
    """What an earlier ``synth.json`` says its run wrote (``floor.files.output_folder``)."""
    return {"site.yaml"} | {f"history/{entry['file']}" for entry in record["entries"]}


def synth_site(
    params: SynthParams, out: str | Path, on_day: Callable[[int], None] | None = None
) -> SynthResult:
    """Write ``OUT/site.yaml``, ``OUT/history/<date>.<format>`` (one per day) and
    ``OUT/synth.json`` (parameters and each day's flags: promotion, spike), whole: built beside
    ``OUT`` and swapped in (:func:`floor.files.output_folder`), so a rerun never mixes its days
    with an earlier run's."""
    import time as clock

    began = clock.perf_counter()
    scenario = synth_scenario(params)
    root = Path(out)
    entries: list[dict[str, object]] = []
    rows = 0
    with output_folder(root, "synth.json", _synth_files) as building:
        write_site_file(
            scenario,
            building / "site.yaml",
            header=f"Synthetic site from `chuteflow site synth` (seed {params.seed}); "
            "fields: docs/site-format.md",
        )
        (building / "history").mkdir()
        for k, day in enumerate(
            generate_history(scenario, params.start, params.n_days, params.seed, params.seasonality)
        ):
            path, n = _write_day(
                scenario, day, building / "history", params.seed, params.file_format
            )
            rows += n
            entries.append({"file": path.name, **day.flags()})
            if on_day is not None:
                on_day(k + 1)
        params_json = {
            k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(params).items()
        }
        (building / "synth.json").write_text(
            json.dumps(
                {
                    "params": params_json,
                    "site": scenario.name,
                    "days": len(entries),
                    "rows": rows,
                    **flagged_days(entries),
                },
                indent=1,
            )
            + "\n"
        )
    site_file, history, manifest = root / "site.yaml", root / "history", root / "synth.json"
    return SynthResult(
        site_file, history, manifest, len(entries), rows, clock.perf_counter() - began
    )


__all__ = ["SynthError", "SynthParams", "SynthResult", "synth_scenario", "synth_site"]
