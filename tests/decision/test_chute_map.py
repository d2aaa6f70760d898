"""Chute map: minimal moves, held chutes kept, out-of-service never assigned, deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decision.chute_map import map_chutes
from decision.state import IDLE


@st.composite
def floors(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_dest = draw(st.integers(1, 6))
    n_chutes = draw(st.integers(1, 25))
    previous = np.array(
        draw(st.lists(st.integers(IDLE, n_dest - 1), min_size=n_chutes, max_size=n_chutes)),
        dtype=np.int64,
    )
    available = np.array(draw(st.lists(st.booleans(), min_size=n_chutes, max_size=n_chutes)))
    counts = np.zeros(n_dest, dtype=np.int64)
    for _ in range(draw(st.integers(0, int(available.sum())))):
        counts[draw(st.integers(0, n_dest - 1))] += 1
    cost = np.array(
        draw(st.lists(st.integers(0, 3), min_size=n_chutes, max_size=n_chutes)), dtype=np.float64
    )
    return counts, previous, available, cost


@settings(max_examples=300, deadline=None)
@given(floors(), st.booleans())
def test_map_is_minimal_and_respects_service(
    floor: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], use_cost: bool
) -> None:
    counts, previous, available, cost = floor
    owner, moves = map_chutes(counts, previous, available, cost if use_cost else None)
    n_dest = counts.shape[0]
    assert np.bincount(owner[owner != IDLE], minlength=n_dest).tolist() == counts.tolist()
    assert not bool((owner[~available] != IDLE).any())
    held = np.bincount(previous[available & (previous != IDLE)], minlength=n_dest)
    assert moves == int(np.maximum(counts - held, 0).sum())
    assert moves == int(((owner != IDLE) & (owner != previous)).sum())
    kept = np.bincount(owner[(owner == previous) & (owner != IDLE)], minlength=n_dest)
    assert kept.tolist() == np.minimum(counts, held).tolist()
    again = map_chutes(counts, previous, available, cost if use_cost else None)
    assert again.owner.tolist() == owner.tolist() and again.moves == moves


def test_cheapest_chutes_move_and_costly_ones_stay() -> None:
    previous = np.array([0, 0, 0, IDLE, IDLE])
    available = np.array([True, True, True, True, False])
    cost = np.array([5.0, 1.0, 3.0, 2.0, 0.0])
    # Destination 0 shrinks to 1 and keeps its costliest chute (0); destination 1 needs 2 and
    # gets the cheapest in-service pool chutes: chute 1 (released, cost 1) and idle chute 3.
    owner, moves = map_chutes(np.array([1, 2]), previous, available, cost)
    assert owner.tolist() == [0, 1, IDLE, 1, IDLE]
    assert moves == 2


def test_equal_costs_break_ties_by_chute_index() -> None:
    owner, moves = map_chutes(
        np.array([1, 1]), np.array([0, 0, IDLE, IDLE]), np.array([True, True, True, True])
    )
    assert owner.tolist() == [0, 1, IDLE, IDLE]
    assert moves == 1


def test_out_of_service_chute_is_idle_even_if_held() -> None:
    owner, moves = map_chutes(np.array([1]), np.array([0, 0]), np.array([False, True]))
    assert owner.tolist() == [IDLE, 0]
    assert moves == 0


def test_refuses_counts_beyond_in_service_chutes() -> None:
    with pytest.raises(ValueError, match="in service"):
        map_chutes(np.array([2]), np.array([0, 0]), np.array([False, True]))
    with pytest.raises(ValueError, match="previous_owner"):
        map_chutes(np.array([1]), np.array([3]), np.array([True]))
