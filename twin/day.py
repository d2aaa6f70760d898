"""One day of demand as the twin consumes it: first inductions per tick and destination.

A day comes either from a day-type group (sampled with a seed) or from a historical day file
(played as given). Both become a ``DayDemand``; the twin never knows which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from floor.scenario import Scenario

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PackageList:
    """Package-level view of a day's first inductions, ordered by time.

    Only needed when the twin emits contract events (package ids on the wire); the
    vectorized simulation uses ``DayDemand.arrivals`` alone.
    """

    tick: IntArray
    """[N] tick of each first induction."""
    destination: IntArray
    """[N] destination index of each package."""
    offset_seconds: FloatArray
    """[N] seconds since the day start of each first induction."""
    package_id: tuple[str, ...]
    """[N] package ids as they appear on the wire."""


@dataclass(frozen=True)
class DayDemand:
    """First inductions of one day on one site."""

    scenario: Scenario
    arrivals: IntArray
    """[n_ticks, D] first inductions per tick and destination."""
    expected_share: FloatArray
    """[n_intervals, D] the day type's expected share of each interval's inductions; what a
    planner knows before the day (the static plan and the features use it). Rows sum to 1."""
    day_start: datetime
    label: str
    """Where the day came from, e.g. ``group 3 seed 7`` or a file path."""
    packages: PackageList | None = field(default=None, repr=False)
    """Package-level records when the day came from a file; ``None`` for sampled days."""

    def __post_init__(self) -> None:
        expected = (self.scenario.n_ticks, self.scenario.n_destinations)
        if self.arrivals.shape != expected:
            raise ValueError(f"arrivals shape {self.arrivals.shape} != {expected}")
        share_shape = (self.scenario.n_intervals, self.scenario.n_destinations)
        if self.expected_share.shape != share_shape:
            raise ValueError(f"expected_share shape {self.expected_share.shape} != {share_shape}")

    @property
    def total(self) -> int:
        return int(self.arrivals.sum())

    def interval_arrivals(self) -> IntArray:
        """[n_intervals, D] first inductions per interval."""
        s = self.scenario
        per_interval: IntArray = self.arrivals.reshape(s.n_intervals, s.ticks_per_interval, -1).sum(
            axis=1
        )
        return per_interval

    def package_list(self) -> PackageList:
        """The package-level records, synthesized deterministically for sampled days.

        Synthesized packages of a tick are spread evenly over the tick, destination by
        destination, with ids ``<site>-<tick>-<destination>-<n>``.
        """
        if self.packages is not None:
            return self.packages
        s = self.scenario
        ticks, destinations = np.nonzero(self.arrivals)
        counts = self.arrivals[ticks, destinations]
        tick_col = np.repeat(ticks, counts).astype(np.int64)
        dest_col = np.repeat(destinations, counts).astype(np.int64)
        # position of each package within its (tick, destination) cell
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        within = np.arange(int(counts.sum())) - starts
        per_tick = np.bincount(tick_col, minlength=s.n_ticks)
        tick_starts = np.repeat(np.cumsum(per_tick) - per_tick, per_tick)
        rank_in_tick = np.arange(tick_col.shape[0]) - tick_starts
        offset = (tick_col + rank_in_tick / np.maximum(per_tick[tick_col], 1)) * s.tick_seconds
        ids = tuple(
            f"{s.site_id}-{t}-{s.destinations[d]}-{n}"
            for t, d, n in zip(tick_col.tolist(), dest_col.tolist(), within.tolist(), strict=True)
        )
        return PackageList(tick_col, dest_col, offset.astype(np.float64), ids)
