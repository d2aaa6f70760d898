"""The day plan: what the decision path is told about a day before it starts.

It lives on the ground floor because every room hands one to a policy: the twin and
evaluation from the sampled day type, the worker from ``day_started``, training from its
episode's day.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class DayPlan:
    """What is known about a day before it starts (and, for evaluation, what is not)."""

    expected_share: FloatArray
    """[n_intervals, D] the day type's expected share of each interval's inductions."""
    true_arrivals: IntArray | None = field(default=None, repr=False)
    """[n_intervals, D] the day's real first inductions; only the lookahead reference reads it."""
    true_tick_arrivals: IntArray | None = field(default=None, repr=False)
    """[n_ticks, D] the same per twin tick; only the lookahead reference reads it."""
    group_shares: FloatArray | None = field(default=None, repr=False)
    """[G, n_intervals, D] the site's day-type groups' shares: with :attr:`prior`, the honest
    plan (``floor/forecast.py``) that the engine updates online from observed arrivals
    (``decision/belief.py``). None: ``expected_share`` is the whole plan (the oracle reference,
    or a plan a user supplies)."""
    prior: FloatArray | None = field(default=None, repr=False)
    """[G] the calendar forecast over the groups."""
    day: str = ""
    """Which operating day this is (``contracts.events.day_key``: the date and the day start
    record's id). Every decision id carries it, so a repeated day never reuses an id."""


__all__ = ["DayPlan"]
