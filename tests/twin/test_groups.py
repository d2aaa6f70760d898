"""Day-type groups: deterministic fitting, valid distributions, groups that really differ."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from floor.daytypes import DayTypeGroups, GroupsError, default_groups, default_groups_path
from floor.scenario import Scenario, load_scenario
from twin.groups import (
    build_default_groups,
    fit_groups,
    group_table,
    kmeans,
    nearest_group,
    sample_day,
)
from twin.history import generate_history


@pytest.fixture(scope="module")
def small() -> Scenario:
    return load_scenario("small")


@pytest.fixture(scope="module")
def history(small: Scenario) -> tuple[list[np.ndarray], list[str]]:
    days = list(generate_history(small, date(2022, 1, 1), 365, seed=11))
    return [d.counts for d in days], [d.label for d in days]


def test_kmeans_is_deterministic_and_finds_obvious_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.concatenate([c + rng.normal(0, 0.5, size=(30, 2)) for c in centres])
    labels = kmeans(points, 3, seed=4)
    assert np.array_equal(labels, kmeans(points, 3, seed=4))
    for block in range(3):
        assert len(set(labels[block * 30 : (block + 1) * 30].tolist())) == 1
    assert len(set(labels.tolist())) == 3


def test_kmeans_rejects_more_groups_than_days() -> None:
    with pytest.raises(ValueError, match="groups"):
        kmeans(np.zeros((2, 3)), 3, seed=0)


def test_fit_is_deterministic_and_probs_are_distributions(
    history: tuple[list[np.ndarray], list[str]],
) -> None:
    counts, labels = history
    a = fit_groups(counts, labels, 5, seed=1, scenario_name="small")
    b = fit_groups(counts, labels, 5, seed=1, scenario_name="small")
    assert np.array_equal(a.probs, b.probs) and a.members == b.members
    assert a.probs.shape == (5, 10, 20)
    assert np.allclose(a.probs.sum(axis=(1, 2)), 1.0) and (a.probs >= 0).all()
    assert sorted(x for m in a.members for x in m) == sorted(labels)
    assert np.all(np.diff(a.volume_mean) >= 0)  # ordered lightest first
    for g, members in enumerate(a.members):
        totals = [counts[labels.index(x)].sum() for x in members]
        assert a.volume_mean[g] == pytest.approx(np.mean(totals))


def test_save_load_round_trip_without_pickle(
    tmp_path: Path, history: tuple[list[np.ndarray], list[str]]
) -> None:
    counts, labels = history
    groups = fit_groups(counts, labels, 4, seed=2, scenario_name="small")
    path = tmp_path / "g.npz"
    groups.save(path)
    with np.load(path, allow_pickle=False) as data:
        assert data["probs"].dtype == np.float32 and data["header"].dtype.kind == "U"
    loaded = DayTypeGroups.load(path)
    assert np.allclose(loaded.probs, groups.probs, atol=1e-6)
    assert np.allclose(loaded.probs.sum(axis=(1, 2)), 1.0, atol=1e-12)
    assert loaded.members == groups.members and loaded.meta["fit_seed"] == 2
    assert np.array_equal(loaded.volume_mean, groups.volume_mean)


def test_load_rejects_a_file_that_is_not_groups(tmp_path: Path) -> None:
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(GroupsError, match=r"junk\.npz"):
        DayTypeGroups.load(path)


@pytest.mark.parametrize("name", ["small", "large"])
def test_shipped_default_groups_fit_and_differ(name: str) -> None:
    scenario = load_scenario(name)
    groups = default_groups(scenario)
    assert groups.n_groups == scenario.default_groups
    assert groups.probs.shape[1:] == (scenario.n_intervals, scenario.n_destinations)
    assert np.allclose(groups.probs.sum(axis=(1, 2)), 1.0)
    assert sum(len(m) for m in groups.members) == 1461
    # robustness needs something to be robust to: the day types span a wide volume range
    assert groups.volume_mean.max() > 2.0 * groups.volume_mean.min()
    assert default_groups_path(name).stat().st_size < 1_500_000
    rows = group_table(groups)
    assert [r["group"] for r in rows] == list(range(groups.n_groups))
    assert sum(r["n_days"] for r in rows) == 1461


def test_shipped_small_groups_match_their_recipe(small: Scenario) -> None:
    shipped = default_groups(small)
    rebuilt = build_default_groups(small)
    assert shipped.members == rebuilt.members
    assert np.allclose(shipped.probs, rebuilt.probs, atol=1e-6)


def test_groups_differ_in_mix_and_intraday_shape(small: Scenario) -> None:
    groups = default_groups(small)
    mixes = groups.probs.sum(axis=1)
    profiles = groups.probs.sum(axis=2)
    mix_gap = np.abs(mixes[:, None, :] - mixes[None, :, :]).sum(axis=2)
    profile_gap = np.abs(profiles[:, None, :] - profiles[None, :, :]).sum(axis=2)
    assert mix_gap.max() > 0.15 and profile_gap.max() > 0.1


def test_sample_day_is_seeded_and_follows_the_group(small: Scenario) -> None:
    groups = default_groups(small)
    g = groups.n_groups - 1
    day = sample_day(groups, g, small, seed=3)
    again = sample_day(groups, g, small, seed=3)
    other = sample_day(groups, g, small, seed=4)
    assert np.array_equal(day.arrivals, again.arrivals)
    assert not np.array_equal(day.arrivals, other.arrivals)
    assert day.label == f"group {g} seed 3"
    assert day.arrivals.shape == (small.n_ticks, small.n_destinations)
    assert np.allclose(day.expected_share.sum(axis=1), 1.0)
    totals = [sample_day(groups, 0, small, seed=s).total for s in range(40)]
    assert abs(np.mean(totals) - groups.volume_mean[0]) < 3 * groups.volume_std[0] / np.sqrt(40)


def test_nearest_group_mostly_recovers_the_group_a_day_came_from(small: Scenario) -> None:
    groups = default_groups(small)
    hits = [
        nearest_group(groups, sample_day(groups, g, small, seed=s).interval_arrivals()) == g
        for g in range(groups.n_groups)
        for s in range(5)
    ]
    assert np.mean(hits) > 0.7  # neighbouring day types overlap; most days are still placed


def test_sample_day_checks_the_scenario(small: Scenario) -> None:
    with pytest.raises(GroupsError, match="shape"):
        sample_day(default_groups(small), 0, load_scenario("large"), seed=0)
    with pytest.raises(ValueError, match="out of range"):
        sample_day(default_groups(small), 99, small, seed=0)


def test_the_calendar_of_member_days_is_python_s_date_arithmetic(small: Scenario) -> None:
    """``DayTypeGroups.calendar`` (numpy from the ordinals) equals ``datetime.date``'s ordinal,
    weekday, month and day of year for member labels all over the calendar (leap years, year
    1 and 9999, labels with a suffix); labels that are not dates are skipped."""
    import random
    from dataclasses import replace
    from datetime import timedelta

    rng = random.Random(7)
    first = date(1, 1, 1)
    span = (date(9999, 12, 31) - first).days
    picked = [first + timedelta(days=rng.randrange(span + 1)) for _ in range(400)]
    picked += [date(2024, 2, 29), date(2023, 12, 31), date(2024, 12, 31), first, date.max]
    members = tuple(
        (*(d.isoformat() + rng.choice(["", ".csv", "T06:00"]) for d in picked[g::3]), "day-7")
        for g in range(3)
    )
    groups = replace(default_groups(small), members=members)
    expected = [
        (d.toordinal(), g, d.weekday(), d.month, d.timetuple().tm_yday)
        for g, labels in enumerate(members)
        for d in (date.fromisoformat(label[:10]) for label in labels if label != "day-7")
    ]
    assert groups.calendar.T.tolist() == [list(row) for row in expected]
