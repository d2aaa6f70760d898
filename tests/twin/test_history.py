"""The synthetic history carries the structure day types are made of, deterministically."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
import pytest

from floor.scenario import Scenario, load_scenario
from twin.history import SPIKE_RATE, HistoricalDay, generate_history, to_demand


@pytest.fixture(scope="module")
def small() -> Scenario:
    return load_scenario("small")


@pytest.fixture(scope="module")
def four_years(small: Scenario) -> list[HistoricalDay]:
    return list(generate_history(small, date(2021, 1, 1), 1461, seed=7))


def _volumes(days: list[HistoricalDay]) -> np.ndarray:
    return np.array([d.volume for d in days], dtype=np.float64)


def test_same_seed_same_days_other_seed_other_days(small: Scenario) -> None:
    a = list(generate_history(small, date(2024, 3, 1), 20, seed=1))
    b = list(generate_history(small, date(2024, 3, 1), 20, seed=1))
    c = list(generate_history(small, date(2024, 3, 1), 20, seed=2))
    assert all(
        np.array_equal(x.counts, y.counts) and x.flags() == y.flags()
        for x, y in zip(a, b, strict=True)
    )
    assert not all(np.array_equal(x.counts, y.counts) for x, y in zip(a, c, strict=True))


def test_a_window_reproduces_the_same_days_as_a_longer_run(small: Scenario) -> None:
    long = list(generate_history(small, date(2023, 12, 1), 60, seed=3))
    window = list(generate_history(small, date(2024, 1, 10), 5, seed=3))
    for day in window:
        twin = long[(day.day - date(2023, 12, 1)).days]
        assert twin.day == day.day and np.array_equal(twin.counts, day.counts)


def test_shapes_and_typical_volume(small: Scenario, four_years: list[HistoricalDay]) -> None:
    assert all(d.counts.shape == (10, 20) and d.counts.dtype == np.int64 for d in four_years)
    typical = small.mean_packages_per_hour * small.day_hours
    assert abs(_volumes(four_years).mean() / typical - 1.0) < 0.1


def test_calendar_patterns(four_years: list[HistoricalDay]) -> None:
    ordinary = [d for d in four_years if not d.is_spike and not d.is_promo]
    vol = {d.day: d.volume for d in ordinary}

    def mean(pred: Callable[[date], bool]) -> float:
        return float(np.mean([v for k, v in vol.items() if pred(k)]))

    assert mean(lambda k: k.weekday() == 0) > 1.25 * mean(lambda k: k.weekday() == 6)
    assert mean(lambda k: k.month == 12 and k.day < 24) > 1.25 * mean(lambda k: k.month == 7)
    assert mean(lambda k: k.year == 2024) > 1.15 * mean(lambda k: k.year == 2021)


def test_promotions_are_multi_day_heavier_and_shift_the_mix(
    four_years: list[HistoricalDay],
) -> None:
    promos = [d for d in four_years if d.is_promo]
    per_year = len(promos) / 4
    assert 8 <= per_year <= 14  # four windows of 2-4 days a year
    by_weekday_promo = np.mean([d.volume for d in promos if not d.is_spike])
    normal = np.mean([d.volume for d in four_years if not d.is_promo and not d.is_spike])
    assert by_weekday_promo > 1.1 * normal
    # each window boosts its own destinations: compare it with the two weeks before it
    by_day = {d.day: d for d in four_years}
    shifts = []
    for day in promos:
        if day.day - timedelta(days=1) in by_day and by_day[day.day - timedelta(days=1)].is_promo:
            continue  # only the first day of each window
        before = [by_day.get(day.day - timedelta(days=k)) for k in range(1, 15)]
        base = np.sum([b.counts.sum(axis=0) for b in before if b is not None], axis=0)
        mix = day.counts.sum(axis=0) / day.volume
        shifts.append(np.abs(mix - base / base.sum()).sum())
    assert np.median(shifts) > 0.15


def test_spike_days_at_the_documented_rate_and_size(
    small: Scenario, four_years: list[HistoricalDay]
) -> None:
    spikes = [d for d in four_years if d.is_spike]
    n = len(four_years)
    sd = np.sqrt(n * SPIKE_RATE * (1 - SPIKE_RATE))
    assert abs(len(spikes) - n * SPIKE_RATE) < 4 * sd
    shares = np.array([d.counts.sum(axis=0) / d.volume for d in four_years])
    usual = np.median(shares, axis=0)
    for day in spikes:
        assert day.spike_destination is not None and 3.0 <= day.spike_factor <= 6.0
        index = small.destination_index[day.spike_destination]
        usual_count = usual[index] * day.volume / (1 + (day.spike_factor - 1) * usual[index])
        assert day.counts[:, index].sum() > 1.8 * usual_count


def test_destinations_peak_in_different_parts_of_the_small_day(
    four_years: list[HistoricalDay],
) -> None:
    total = np.sum([d.counts for d in four_years[:90]], axis=0)  # [intervals, D]
    peaks = total.argmax(axis=0)
    assert len(set(peaks.tolist())) >= 6
    # a destination is busy only part of the day: its busiest interval carries > 2x the mean
    assert np.median(total.max(axis=0) / total.mean(axis=0)) > 2.0


def test_heavy_tailed_destination_shares(four_years: list[HistoricalDay]) -> None:
    share = np.sort(np.sum([d.counts.sum(axis=0) for d in four_years], axis=0))[::-1]
    share = share / share.sum()
    assert share[0] > 5 * share[-1]
    assert share[:4].sum() > 0.45  # top 20% of the 20 destinations


def test_large_history_is_fast_and_skewed() -> None:
    large = load_scenario("large")
    days = list(generate_history(large, date(2022, 1, 1), 60, seed=1))
    share = np.sort(np.sum([d.counts.sum(axis=0) for d in days], axis=0))[::-1]
    share = share / share.sum()
    assert 0.55 < share[:24].sum() < 0.8 and share[60:].sum() < 0.2  # 7:2:1-style tiers
    assert all(d.counts.shape == (132, 120) for d in days)


def test_to_demand_keeps_interval_counts_and_is_seeded(
    small: Scenario, four_years: list[HistoricalDay]
) -> None:
    day = four_years[100]
    demand = to_demand(day, small, seed=5)
    assert np.array_equal(demand.interval_arrivals(), day.counts)
    assert np.allclose(demand.expected_share.sum(axis=1), 1.0)
    assert np.array_equal(demand.arrivals, to_demand(day, small, seed=5).arrivals)
    assert not np.array_equal(demand.arrivals, to_demand(day, small, seed=6).arrivals)
    assert demand.day_start.date() == day.day and demand.day_start.hour == 6
