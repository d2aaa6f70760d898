"""Chute map: chute counts per destination -> which physical chute serves which destination.

Moving a chute (closing out its container, relabelling it) is the costly physical act, so the
map changes as few chutes as possible. With a cost per chute (not per chute-destination pair)
the chute-level problem collapses to counts (``docs/design-facts.md#chute-map-counts``):
every destination keeps ``min(held, new count)`` of the in-service chutes it holds, and only
the shortfall ``sum_d max(0, counts[d] - held_available[d])`` is moved, which is the minimum
possible number of moves. Which chutes move is then a choice of the cheapest.

Conventions:

* A *move* is a chute that gains a destination it did not hold (idle -> destination counts,
  destination -> idle does not: a released chute needs no relabelling until it is reused).
* Out-of-service chutes are ``IDLE`` in the published map, whoever held them: an allocation
  must not count a chute that cannot eject, and the allocation event's map must match its
  counts. When such a chute returns, handing it back to its old destination costs a move like
  any other idle chute (the projection sees it as idle capacity).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from decision.state import IDLE

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


class ChuteMap(NamedTuple):
    """The published map and how many chutes it moves; unpacks as ``owner, moves``."""

    owner: IntArray
    """[C] destination index per chute, ``IDLE`` for unallocated or out of service."""
    moves: int
    """Chutes assigned to a destination that did not hold them."""


def map_chutes(
    counts: IntArray,
    previous_owner: IntArray,
    chute_available: BoolArray,
    move_cost: FloatArray | None = None,
) -> ChuteMap:
    """Assign chutes to destinations so each gets ``counts[d]``, moving as few as possible.

    1. Each destination keeps up to ``counts[d]`` of the in-service chutes it holds. When it
       shrinks it keeps the ones most costly to move (ties: the lowest chute index), so the
       chutes it releases are the cheap ones that other destinations can take.
    2. Released and idle in-service chutes form a pool, cheapest first (ties: lowest chute
       index); destinations that need more chutes take from it in destination order.

    The number of moves is ``sum_d max(0, counts[d] - held_available[d])``, the minimum, and
    the moved chutes are the cheapest the pool allows, so total move cost is also minimal.
    Deterministic for equal inputs.

    Args:
        counts: [D] chutes per destination (e.g. from :func:`decision.projection.project`).
        previous_owner: [C] destination index per chute now, or ``IDLE``.
        chute_available: [C] False for out-of-service chutes; they are never assigned.
        move_cost: [C] cost of moving each chute (e.g. distance from the container store);
            ``None`` means all equal.

    Raises:
        ValueError: shapes disagree, a count is negative, or counts exceed in-service chutes.
    """
    counts = np.asarray(counts, dtype=np.int64)
    previous = np.asarray(previous_owner, dtype=np.int64)
    available = np.asarray(chute_available, dtype=bool)
    n_chutes = previous.shape[0]
    n_dest = counts.shape[0]
    if available.shape != (n_chutes,):
        raise ValueError(f"chute_available must be [{n_chutes}], got {available.shape}")
    cost = (
        np.zeros(n_chutes, dtype=np.float64)
        if move_cost is None
        else np.asarray(move_cost, dtype=np.float64)
    )
    if cost.shape != (n_chutes,):
        raise ValueError(f"move_cost must be [{n_chutes}], got {cost.shape}")
    if bool((counts < 0).any()):
        raise ValueError("counts must be >= 0")
    if int(counts.sum()) > int(available.sum()):
        raise ValueError(
            f"counts need {int(counts.sum())} chutes, only {int(available.sum())} in service"
        )
    if bool(((previous < IDLE) | (previous >= n_dest)).any()):
        raise ValueError(f"previous_owner values must be IDLE or in [0, {n_dest})")

    owner = np.full(n_chutes, IDLE, dtype=np.int64)
    index = np.arange(n_chutes)
    held = available & (previous != IDLE)
    # Held chutes ordered by destination, then most costly first, then lowest index: the
    # first counts[d] of each destination's run are the ones it keeps.
    held_chutes = index[held]
    order = np.lexsort((held_chutes, -cost[held_chutes], previous[held_chutes]))
    held_chutes = held_chutes[order]
    held_dest = previous[held_chutes]
    run_start = np.searchsorted(held_dest, held_dest)
    rank = np.arange(held_chutes.shape[0]) - run_start
    keep = rank < counts[held_dest]
    owner[held_chutes[keep]] = held_dest[keep]

    kept = np.bincount(held_dest[keep], minlength=n_dest)
    shortfall = counts - kept
    pool = index[available & (owner == IDLE)]
    pool = pool[np.lexsort((pool, cost[pool]))]
    takers = np.repeat(np.arange(n_dest), shortfall)
    owner[pool[: takers.shape[0]]] = takers
    return ChuteMap(owner=owner, moves=int(takers.shape[0]))


__all__ = ["ChuteMap", "map_chutes"]
