"""What the decision path knows about a site at an interval boundary.

``SiteState`` is the one neutral description of a floor that the twin produces from its
simulation and the streaming worker produces from events. Features, policies and the
projection read only this, so the twin, training, replay and the live worker cannot see
different worlds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

IDLE = -1
"""Owner value of a chute that no destination holds."""

ARRIVAL_LAGS = 3
"""Intervals of arrival history kept per destination (row 0 is the most recent)."""


@dataclass(frozen=True)
class SiteState:
    """A site just before the allocation for ``interval_index`` is decided.

    Arrays are indexed by destination (``D``, the scenario's order) or by eject chute (``C``).
    """

    interval_index: int
    """The interval about to be decided (0 = the first of the day)."""
    n_intervals: int
    """Intervals in the day; ``interval_index / n_intervals`` is the time of day."""
    chute_owner: IntArray
    """[C] destination index holding each chute now, or ``IDLE``."""
    chute_available: BoolArray
    """[C] False while a chute is out of service (it cannot be allocated)."""
    chute_open: BoolArray
    """[C] True if the chute can eject right now (not full, swapping, moving or out)."""
    arrivals: IntArray
    """[ARRIVAL_LAGS, D] first inductions per destination in the last intervals."""
    recirculated: IntArray
    """[D] recirculation events per destination in the last interval."""
    backlog: IntArray
    """[D] recirculated packages not yet inducted again."""
    expected_share: FloatArray
    """[D] the day type's expected share of the next interval's inductions (sums to 1)."""
    plan_trust: float = 1.0
    """How far the day so far matches the plan (``decision.belief``): 1 as predicted, 0 a day
    that departs from every group. 1 for a plan used as given."""

    @property
    def n_destinations(self) -> int:
        return int(self.recirculated.shape[0])

    @property
    def n_chutes(self) -> int:
        return int(self.chute_owner.shape[0])

    @property
    def is_day_setup(self) -> bool:
        """The first decision of a day on an empty floor: chutes are set up before the shift,
        so this allocation is not held to the per-interval move cap."""
        return self.interval_index == 0 and bool((self.chute_owner == IDLE).all())

    def held(self) -> IntArray:
        """[D] chutes each destination holds now (available or not)."""
        owned = self.chute_owner[self.chute_owner != IDLE]
        return np.bincount(owned, minlength=self.n_destinations).astype(np.int64)

    def held_available(self) -> IntArray:
        """[D] chutes each destination holds that are in service."""
        mask = (self.chute_owner != IDLE) & self.chute_available
        return np.bincount(self.chute_owner[mask], minlength=self.n_destinations).astype(np.int64)
