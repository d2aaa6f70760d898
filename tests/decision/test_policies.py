"""Built-in policies: the static plan, proportional targets, the lookahead's value model."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from decision.policies import (
    recirculation_values,
    static_plan_counts,
    target_values,
)
from floor.site import SitePhysics

PHYSICS = SitePhysics(
    eject_chutes=187,
    max_chutes_per_destination=12,
    interval_seconds=300.0,
    chute_packages_per_second=20 / 60,
    container_capacity=100,
    swap_seconds=90.0,
    move_seconds=120.0,
    tick_seconds=30.0,
)


@given(
    st.lists(st.floats(1e-4, 1.0), min_size=1, max_size=40),
    st.integers(1, 200),
)
def test_static_plan_uses_every_chute_and_serves_every_destination_it_can(
    shares: list[float], chutes: int
) -> None:
    share = np.asarray(shares)
    counts = static_plan_counts(share, chutes)
    assert int(counts.sum()) == chutes
    if chutes >= len(shares):
        assert (counts >= 1).all()
    else:
        # the largest shares get the chutes
        served = share[counts == 1].min()
        assert (share[counts == 0] <= served).all()


def test_static_plan_is_proportional_to_share() -> None:
    counts = static_plan_counts(np.array([0.5, 0.3, 0.1, 0.05, 0.05]), 12)
    assert counts.tolist() == [6, 3, 1, 1, 1]


def test_target_values_peak_at_the_rounded_target() -> None:
    values = target_values(np.array([0.2, 2.6, 7.0]), 9)
    assert values.argmax(axis=1).tolist() == [0, 3, 7]


def test_more_chutes_never_mean_more_expected_recirculation_for_held_chutes() -> None:
    load = np.array([0.0, 10.0, 100.0, 300.0, 1500.0])
    held = np.full(load.shape, 100)  # all levels already held: no move downtime
    values = recirculation_values(load, held, PHYSICS)
    assert (np.diff(values, axis=1) >= -1e-9).all()
    # zero chutes recirculate everything; plenty of chutes almost nothing
    np.testing.assert_allclose(-values[:, 0], load)
    assert -values[2, 12] < 1.0


def test_moving_chutes_in_costs_capacity_this_interval() -> None:
    load = np.array([200.0])
    held_none = recirculation_values(load, np.array([0]), PHYSICS)
    held_all = recirculation_values(load, np.array([12]), PHYSICS)
    assert (held_none[0, 1:] <= held_all[0, 1:] + 1e-9).all()
    assert held_none[0, 2] < held_all[0, 2]
