"""The honest plan: what a planner knows about a day before it starts.

A day's plan is a forecast over the site's day-type groups from the calendar and the site's
history up to the day before (issue 10's protocol), never the day's true group and never its
own counts. The prior of group ``g`` is a weighted count of the history's days in ``g`` that
lie before the day, each weighted by how much it resembles the day on the calendar: the same
weekday, the same month, and nearness in the year (promotions and seasons recur at the same
time of year). Within the day the plan is updated online from the arrivals observed so far
(``decision/belief.py``); both the twin and the worker build plans here, so a policy sees the
same plan in simulation, replay and on a live floor.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import numpy.typing as npt

from floor.daytypes import DayTypeGroups
from floor.plan import DayPlan

FloatArray = npt.NDArray[np.float64]

SAME_WEEKDAY = 3.0
"""Weight of a history day on the same weekday (volume and mix differ most by weekday)."""
SAME_MONTH = 2.0
NEAR_IN_YEAR_DAYS = 10
"""A history day within this many days of the same date in another year gets ``NEAR_IN_YEAR``
(promotions and peaks fall at the same time every year)."""
NEAR_IN_YEAR = 3.0
SMOOTHING = 0.5
"""Added to every group's weight: a group the calendar never saw on such a day stays possible."""


def calendar_prior(groups: DayTypeGroups, day: date) -> FloatArray:
    """``[G]`` probability of each group for ``day``, from history days before it."""
    ordinals, labels, weekday, month, in_year = groups.calendar
    before = ordinals < day.toordinal()
    weights = np.full(groups.n_groups, SMOOTHING)
    if before.any():
        gap = np.abs(in_year[before] - day.timetuple().tm_yday)
        gap = np.minimum(gap, 365 - gap)
        w = np.where(weekday[before] == day.weekday(), SAME_WEEKDAY, 1.0)
        w *= np.where(month[before] == day.month, SAME_MONTH, 1.0)
        w *= np.where(gap <= NEAR_IN_YEAR_DAYS, NEAR_IN_YEAR, 1.0)
        weights += np.bincount(labels[before], weights=w, minlength=groups.n_groups)
    prior: FloatArray = weights / weights.sum()
    return prior


def honest_plan(groups: DayTypeGroups, day: date, key: str = "") -> DayPlan:
    """The plan of ``day``: the calendar prior, its mixture of the groups' shares as the
    expected share, and what the online update needs (``decision/belief.py``)."""
    prior = calendar_prior(groups, day)
    shares = groups.shares
    mixture = np.einsum("g,gkd->kd", prior, shares)
    mixture /= mixture.sum(axis=1, keepdims=True)
    return DayPlan(expected_share=mixture, day=key, group_shares=shares, prior=prior)


def forecast_group(groups: DayTypeGroups, day: date) -> int:
    """The most likely group for ``day`` (what a ``day_started`` record declares)."""
    return int(np.argmax(calendar_prior(groups, day)))


__all__ = ["calendar_prior", "forecast_group", "honest_plan"]
