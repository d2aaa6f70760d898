"""A synthetic multi-year induction history, shaped like a real site's, from a seed.

No site's history was published with the paper, so the twin needs one that carries the
structure robustness is about: the day types must differ the way real ones do. Each day's
first inductions per (interval, destination) are Poisson draws around a rate built from:

- **volume**: ``mean_packages_per_hour * day_hours`` times a season factor (peak
  Nov-Dec, a post-Christmas trough and a summer dip), a weekday factor (Monday high, Sunday
  low), year-over-year growth (the trend equals the typical day on ``GROWTH_ANCHOR``,
  2023-01-01, the middle of the default 2021-2024 history), promotions and day noise;
- **destination mix**: Zipf-like shares (on the large site the top 20% of destinations take
  ~2/3 of the volume, the next 30% ~1/5, the bottom half the rest: the 7:2:1-style skew of
  public sortation benchmarks; on the small site the top destination takes ~28%) that drift
  slowly (a few sinusoids per destination with periods of 0.5-3 years, about +-20%);
- **intraday shape**: each destination has its own peak time and width over the day on top
  of a site-level wave profile. On the small site (10 chutes, 20 destinations, 5 hours)
  destinations are active in different parts of the day, so chutes must follow them;
- **promotions**: a few multi-day windows a year (spring sale, mid-summer sale, Black Friday
  to Cyber Monday, one floating event) with 1.2-1.45x volume and a shifted mix: a random
  ~15% of destinations get 1.8-3x their usual share;
- **spike days**: with probability ``SPIKE_RATE`` a day has one destination receiving
  ``SPIKE_FACTOR_RANGE`` (3-6x) its usual daily volume, the extra arriving as one burst of a
  couple of hours (a customer ordering a large share of their month in one drop).

Everything except the per-day draws is a function of ``(seed, date)``: the drift and the
promotion calendar are anchored to the calendar, not to ``start``, so a shorter window of the
same seed reproduces exactly the same days as a longer one.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from floor.daytypes import normalize_rows
from floor.scenario import Scenario
from twin.day import DayDemand

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

SPIKE_RATE = 0.02
"""Probability that a day is a spike day (about 7 a year)."""
SPIKE_FACTOR_RANGE = (3.0, 6.0)
"""A spike destination receives this many times its usual daily volume (uniform)."""
YEARLY_GROWTH = 0.08
"""Year-over-year volume growth."""
GROWTH_ANCHOR = date(2023, 1, 1)
"""Where the growth trend equals the scenario's typical day: the middle of the default
2021-2024 history. Anchored to the calendar (not to ``start``) so windows of one seed agree."""
WEEKDAY_FACTOR = (1.14, 1.06, 1.02, 1.0, 0.98, 0.86, 0.78)
"""Monday..Sunday volume; Monday carries the weekend's backlog, Sunday is lightest."""
DAY_NOISE_SIGMA = 0.06
"""Log-normal day-to-day volume noise not explained by the calendar."""

_WEEKDAY = tuple(f * 7 / sum(WEEKDAY_FACTOR) for f in WEEKDAY_FACTOR)  # mean 1
_EPOCH = date(2000, 1, 1)
_DRIFT_PERIODS_DAYS = (180.0, 420.0, 1100.0)
_DRIFT_AMPLITUDE = 0.12


@dataclass(frozen=True)
class HistoricalDay:
    """One day of a site's induction history, aggregated per decision interval."""

    day: date
    counts: IntArray
    """[n_intervals, D] first inductions per interval and destination."""
    is_promo: bool = False
    promo_name: str | None = None
    is_spike: bool = False
    spike_destination: str | None = None
    """Destination id of the spike, when ``is_spike``."""
    spike_factor: float = 1.0
    """Spike destination's daily volume relative to its usual volume that day."""

    @property
    def volume(self) -> int:
        return int(self.counts.sum())

    @property
    def label(self) -> str:
        return self.day.isoformat()

    def flags(self) -> dict[str, object]:
        """JSON-ready summary (the ``days generate`` manifest uses it)."""
        return {
            "date": self.label,
            "volume": self.volume,
            "weekday": self.day.strftime("%a"),
            "is_promo": self.is_promo,
            "promo_name": self.promo_name,
            "is_spike": self.is_spike,
            "spike_destination": self.spike_destination,
            "spike_factor": round(self.spike_factor, 3),
        }


def flagged_days(entries: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The spike and promotion dates of a run's day entries (their :meth:`HistoryDay.flags`
    with a ``file``), and the entries: the tail of ``days generate``'s and ``site synth``'s
    records, which list what the run wrote."""
    return {
        "spike_days": [e["date"] for e in entries if e["is_spike"]],
        "promo_days": [e["date"] for e in entries if e["is_promo"]],
        "entries": entries,
    }


@dataclass(frozen=True)
class _Site:
    """The seed-fixed structure of a synthetic site (shares, shapes, drift)."""

    base_log_share: FloatArray  # [D]
    drift_amp: FloatArray  # [D, K]
    drift_phase: FloatArray  # [D, K]
    peak: FloatArray  # [D] peak time as a fraction of the day
    width: FloatArray  # [D] width (sd) as a fraction of the day
    floor: FloatArray  # [D] share of a destination's volume spread evenly over the day
    x: FloatArray  # [n_intervals] interval midpoints as day fractions
    wave: FloatArray  # [n_intervals] site-level induction wave, mean 1


def _site(scenario: Scenario, seed: int) -> _Site:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5173]))
    d = scenario.n_destinations
    # Zipf-Mandelbrot weights (rank + offset) ** -exponent. Large site: top 20% of
    # destinations ~66% of volume, next 30% ~20%, bottom half ~14% (7:2:1-style), top one ~9%.
    exponent, offset = (1.1, 2.0) if d > 40 else (1.0, 0.0)
    ranks = rng.permutation(d) + 1
    base_log_share = -exponent * np.log(ranks.astype(np.float64) + offset)
    k = len(_DRIFT_PERIODS_DAYS)
    drift_amp = rng.uniform(0.3, 1.0, size=(d, k)) * _DRIFT_AMPLITUDE
    drift_phase = rng.uniform(0.0, 2 * math.pi, size=(d, k))
    # Stratified peak times: every part of the day has destinations peaking in it.
    peak = (rng.permutation(d) + rng.uniform(0.0, 1.0, size=d)) / d
    peak = 0.05 + 0.9 * peak
    if d <= 40:
        # A small site has fewer chutes than destinations: each destination's volume comes in
        # one wave of an hour or so, so about half the destinations are active at a time.
        width = rng.uniform(0.05, 0.10, size=d)
        floor = rng.uniform(0.0, 0.03, size=d)
    else:
        width = rng.uniform(0.08, 0.22, size=d)
        floor = rng.uniform(0.15, 0.40, size=d)
    n = scenario.n_intervals
    x = (np.arange(n) + 0.5) / n
    # Site-level waves: a ramp-up at the start, an inbound-truck wave early and one after midday.
    wave = (
        1.0
        + 0.35 * np.exp(-0.5 * ((x - 0.3) / 0.12) ** 2)
        + 0.25 * np.exp(-0.5 * ((x - 0.72) / 0.1) ** 2)
    )
    wave *= np.minimum(1.0, 0.55 + x * 6.0)
    wave /= wave.mean()
    return _Site(base_log_share, drift_amp, drift_phase, peak, width, floor, x, wave)


def _season_factor(day: date) -> float:
    """Peak season (late Nov to Christmas), a January trough and a summer dip; mean ~1."""
    doy = day.timetuple().tm_yday

    def bump(center: float, width: float) -> float:
        delta = (doy - center + 182.5) % 365.0 - 182.5  # circular distance in days
        return math.exp(-0.5 * (delta / width) ** 2)

    return (
        1.0
        + 0.40 * bump(345, 16)  # mid-December peak (Black Friday is a promotion below)
        - 0.25 * bump(5, 8)  # post-holiday trough
        - 0.15 * bump(210, 28)  # summer dip
    )


def _promotions(seed: int, year: int) -> list[tuple[str, date, int, float]]:
    """The promotion windows of one year: (name, first day, length, volume factor)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9A0, year]))
    windows = [
        ("spring-sale", date(year, 3, 10) + timedelta(days=int(rng.integers(0, 14))), 3),
        ("summer-sale", date(year, 7, 8) + timedelta(days=int(rng.integers(0, 10))), 2),
        ("cyber-week", date(year, 11, 24) + timedelta(days=int(rng.integers(0, 4))), 4),
        ("flash-event", date(year, 4, 15) + timedelta(days=int(rng.integers(0, 150))), 2),
    ]
    return [(name, start, length, float(rng.uniform(1.2, 1.45))) for name, start, length in windows]


def _promo_mix(seed: int, year: int, name: str, n_destinations: int) -> FloatArray:
    """Multiplicative share boost of a promotion: ~15% of destinations get 1.8-3x."""
    rng = np.random.default_rng(
        np.random.SeedSequence([seed, 0x9A1, year, zlib.crc32(name.encode())])
    )
    boost = np.ones(n_destinations)
    k = max(1, round(0.15 * n_destinations))
    chosen = rng.choice(n_destinations, size=k, replace=False)
    boost[chosen] = rng.uniform(1.8, 3.0, size=k)
    return boost


def _bumps(x: FloatArray, peak: FloatArray, width: FloatArray) -> FloatArray:
    """[n_intervals, D] Gaussian bumps normalized to sum 1 over the day per destination."""
    shape: FloatArray = np.exp(-0.5 * ((x[:, None] - peak[None, :]) / width[None, :]) ** 2)
    normalized: FloatArray = shape / shape.sum(axis=0, keepdims=True)
    return normalized


def generate_history(
    scenario: Scenario, start: date, n_days: int, seed: int, seasonality: float = 1.0
) -> Iterator[HistoricalDay]:
    """Yield ``n_days`` consecutive synthetic days from ``start``; deterministic per seed.

    ``seasonality`` scales the yearly and weekly volume swings (0: flat calendar, 1: the
    built-in sites' calendar, 2: twice their amplitude); promotions, spikes and the mix are
    unchanged by it. At 1 the days are exactly the built-in sites' days.

    Each day's counts are Poisson around its rate matrix, so the daily total scatters around
    the calendar-driven volume like a real day does. A day's draws depend only on
    ``(seed, date)``: windows of the same seed agree on the days they share.
    """
    if n_days < 0:
        raise ValueError("n_days must be >= 0")
    site = _site(scenario, seed)
    d = scenario.n_destinations
    base_volume = scenario.mean_packages_per_hour * scenario.day_hours
    periods = np.array(_DRIFT_PERIODS_DAYS)
    promo_cache: dict[int, list[tuple[str, date, int, float]]] = {}
    for offset in range(n_days):
        day = start + timedelta(days=offset)
        if day.year not in promo_cache:
            promo_cache[day.year] = _promotions(seed, day.year)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xDA7, day.toordinal()]))
        t = float((day - _EPOCH).days)
        log_share = site.base_log_share + (
            site.drift_amp * np.sin(2 * math.pi * t / periods[None, :] + site.drift_phase)
        ).sum(axis=1)
        share = np.exp(log_share)
        season, week = _season_factor(day), _WEEKDAY[day.weekday()]
        if seasonality != 1.0:  # at 1 the built-in histories stay bit for bit the same
            season = max(0.05, 1.0 + seasonality * (season - 1.0))
            week = max(0.05, 1.0 + seasonality * (week - 1.0))
        volume = base_volume * season * week
        volume *= (1.0 + YEARLY_GROWTH) ** ((day - GROWTH_ANCHOR).days / 365.25)
        volume *= math.exp(rng.normal(0.0, DAY_NOISE_SIGMA) - DAY_NOISE_SIGMA**2 / 2)
        promo_name = None
        for name, first, length, factor in promo_cache[day.year]:
            if first <= day < first + timedelta(days=length):
                promo_name = name
                volume *= factor
                share = share * _promo_mix(seed, day.year, name, d)
                break
        share /= share.sum()
        # Day-to-day jitter of the intraday peaks; Mondays run early (weekend backlog at open),
        # weekends are flatter.
        shift = rng.normal(0.0, 0.02, size=d) - (0.04 if day.weekday() == 0 else 0.0)
        width = site.width * (1.25 if day.weekday() >= 5 else 1.0)
        shape = _bumps(site.x, np.clip(site.peak + shift, 0.0, 1.0), width)
        shape = site.floor[None, :] / len(site.x) + (1.0 - site.floor[None, :]) * shape
        shape *= site.wave[:, None]
        shape /= shape.sum(axis=0, keepdims=True)
        rate = volume * shape * share[None, :]
        is_spike = bool(rng.random() < SPIKE_RATE)
        spike_destination: str | None = None
        spike_factor = 1.0
        if is_spike:
            index = int(rng.integers(d))
            spike_factor = float(rng.uniform(*SPIKE_FACTOR_RANGE))
            extra = (spike_factor - 1.0) * volume * share[index]
            burst_peak = np.array([rng.uniform(0.15, 0.85)])
            burst = _bumps(site.x, burst_peak, np.array([rng.uniform(0.06, 0.12)]))[:, 0]
            rate[:, index] += extra * burst
            spike_destination = scenario.destinations[index]
        counts = rng.poisson(rate).astype(np.int64)
        yield HistoricalDay(
            day=day,
            counts=counts,
            is_promo=promo_name is not None,
            promo_name=promo_name,
            is_spike=is_spike,
            spike_destination=spike_destination,
            spike_factor=spike_factor,
        )


def spread_over_ticks(counts: IntArray, scenario: Scenario, rng: np.random.Generator) -> IntArray:
    """[n_ticks, D] arrivals: each interval's count spread uniformly at random over its ticks.

    Within an interval the rate is taken as flat: the history only knows interval totals.
    """
    t = scenario.ticks_per_interval
    n, d = counts.shape
    per_tick = rng.multinomial(counts.reshape(-1), np.full(t, 1.0 / t))  # [n*d, t]
    return per_tick.reshape(n, d, t).transpose(0, 2, 1).reshape(n * t, d).astype(np.int64)


def day_start_on(scenario: Scenario, day: date) -> datetime:
    """The scenario's day start time of day (UTC) on ``day``."""
    start = scenario.day_start
    return datetime.combine(day, time(start.hour, start.minute, start.second), start.tzinfo)


def to_demand(
    day: HistoricalDay,
    scenario: Scenario,
    seed: int,
    expected_share: FloatArray | None = None,
) -> DayDemand:
    """A history day as the twin's input, its interval counts spread over ticks (seeded).

    ``expected_share`` defaults to the day's own counts normalized per interval: a hindsight
    view (the planner knows the day's true mix). Pass a group's share
    (``twin.groups.nearest_group``) for the view a planner has before the day.
    """
    expected_shape = (scenario.n_intervals, scenario.n_destinations)
    if day.counts.shape != expected_shape:
        raise ValueError(f"day counts shape {day.counts.shape} != {expected_shape}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, day.day.toordinal()]))
    arrivals = spread_over_ticks(day.counts, scenario, rng)
    share = normalize_rows(day.counts) if expected_share is None else expected_share
    return DayDemand(
        scenario=scenario,
        arrivals=arrivals,
        expected_share=share,
        day_start=day_start_on(scenario, day.day),
        label=f"history {day.label} seed {seed}",
    )
