"""The concentration stress (``twin.spike.with_concentration``): one destination grown to a set
share of the day, every other destination untouched, reproducible by seed."""

from __future__ import annotations

import numpy as np
import pytest

from floor.daytypes import default_groups
from floor.scenario import load_scenario
from twin.groups import sample_day
from twin.spike import BIG_FRACTION, big_destination, concentration_extra, with_concentration

SCENARIO = load_scenario("small")
GROUPS = default_groups(SCENARIO)
BASE = sample_day(GROUPS, 2, SCENARIO, seed=11)


@pytest.mark.parametrize("share", [0.15, 0.2, 0.3])
def test_the_destination_reaches_the_share_and_the_others_are_untouched(share: float) -> None:
    destination = big_destination(BASE, seed=5)
    day = with_concentration(BASE, destination, share, seed=5)
    own = day.arrivals[:, destination].sum()
    assert abs(own / day.total - share) < 1.0 / day.total  # within one package
    others = np.delete(np.arange(SCENARIO.n_destinations), destination)
    np.testing.assert_array_equal(day.arrivals[:, others], BASE.arrivals[:, others])
    # the day grows by exactly the extra packages, all on the one destination
    assert day.total - BASE.total == concentration_extra(BASE, destination, share)
    assert (day.arrivals[:, destination] >= BASE.arrivals[:, destination]).all()
    # the plan did not see it coming
    np.testing.assert_array_equal(day.expected_share, BASE.expected_share)
    assert "concentration" in day.label and day.packages is None


def test_the_extra_packages_follow_the_destinations_own_intraday_shape() -> None:
    destination = big_destination(BASE, seed=0)
    day = with_concentration(BASE, destination, 0.25, seed=3)
    before = BASE.interval_arrivals()[:, destination].astype(float)
    after = day.interval_arrivals()[:, destination].astype(float)
    quiet = BASE.arrivals[:, destination] == 0
    assert (day.arrivals[quiet, destination] == 0).all()  # none where it had none
    assert np.corrcoef(before, after)[0, 1] > 0.9


def test_same_seed_same_day_other_seed_other_day() -> None:
    destination = big_destination(BASE, seed=1)
    a = with_concentration(BASE, destination, 0.2, seed=9)
    b = with_concentration(BASE, destination, 0.2, seed=9)
    c = with_concentration(BASE, destination, 0.2, seed=10)
    np.testing.assert_array_equal(a.arrivals, b.arrivals)
    assert not np.array_equal(a.arrivals, c.arrivals)
    assert a.total == c.total  # the share fixes the count; the seed only places the packages


def test_the_destination_is_drawn_among_the_big_ones_by_seed() -> None:
    share = BASE.expected_share.mean(axis=0)
    n = max(2, round(BIG_FRACTION * SCENARIO.n_destinations))
    big = set(np.argsort(-share, kind="stable")[:n].tolist())
    picked = {big_destination(BASE, seed) for seed in range(40)}
    assert picked == big  # every big one is drawn by some seed, no other
    assert big_destination(BASE, 7) == big_destination(BASE, 7)
    large = load_scenario("large")
    day = sample_day(default_groups(large), 0, large, seed=3)
    order = np.argsort(-day.expected_share.mean(axis=0), kind="stable").tolist()
    assert max(order.index(big_destination(day, seed)) for seed in range(100)) == 11


def test_a_destination_already_at_the_share_is_left_as_it_was() -> None:
    biggest = int(np.argmax(BASE.arrivals.sum(axis=0)))
    own = BASE.arrivals[:, biggest].sum() / BASE.total
    day = with_concentration(BASE, biggest, float(own) * 0.9, seed=1)
    np.testing.assert_array_equal(day.arrivals, BASE.arrivals)


def test_a_planned_concentration_moves_the_plan_by_the_same_factor() -> None:
    destination = big_destination(BASE, seed=2)
    surprise = with_concentration(BASE, destination, 0.2, seed=4)
    planned = with_concentration(BASE, destination, 0.2, seed=4, planned=True)
    np.testing.assert_array_equal(planned.arrivals, surprise.arrivals)
    np.testing.assert_allclose(planned.expected_share.sum(axis=1), 1.0)
    factor = surprise.arrivals[:, destination].sum() / BASE.arrivals[:, destination].sum()
    ratio = planned.expected_share / BASE.expected_share
    others = np.delete(np.arange(SCENARIO.n_destinations), destination)
    # the destination's plan share grows by the factor against every other destination's
    np.testing.assert_allclose(ratio[:, destination] / ratio[:, others[0]], factor)
    np.testing.assert_allclose(ratio[:, others], ratio[:, others[:1]].repeat(len(others), 1))


def test_a_share_outside_the_unit_interval_is_refused() -> None:
    for share in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="share"):
            with_concentration(BASE, 0, share, seed=1)


def test_below_skips_destinations_that_already_hold_the_share() -> None:
    own = BASE.arrivals.sum(axis=0) / BASE.total
    first, second = sorted(
        {big_destination(BASE, seed) for seed in range(4)}, key=lambda j: -own[j]
    )
    below = float(own[first])  # the largest already holds it; the other does not
    for seed in range(4):
        assert big_destination(BASE, seed, below=below) == second
    changed = with_concentration(BASE, second, below, seed=1)
    assert changed.total > BASE.total
    # nobody under the share: every big one again (the transform then leaves the day as it was)
    assert {big_destination(BASE, seed, below=0.001) for seed in range(4)} == {first, second}
