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
from functools import lru_cache

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


@lru_cache(maxsize=8)
def _member_dates(
    members: tuple[tuple[str, ...], ...],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(ordinal date, group) of every history day whose label is an ISO date."""
    ordinals, labels = [], []
    for g, days in enumerate(members):
        for label in days:
            try:
                ordinals.append(date.fromisoformat(label[:10]).toordinal())
            except ValueError:
                continue  # a day-file name, not a date: no calendar information
            labels.append(g)
    return np.asarray(ordinals, dtype=np.int64), np.asarray(labels, dtype=np.int64)


def calendar_prior(groups: DayTypeGroups, day: date) -> FloatArray:
    """``[G]`` probability of each group for ``day``, from history days before it."""
    ordinals, labels = _member_dates(groups.members)
    before = ordinals < day.toordinal()
    weights = np.full(groups.n_groups, SMOOTHING)
    if before.any():
        days = ordinals[before]
        weekday = (days + 6) % 7  # date.fromordinal(o).weekday() == (o + 6) % 7
        month = np.array([date.fromordinal(int(o)).month for o in days])
        in_year = np.array([date.fromordinal(int(o)).timetuple().tm_yday for o in days])
        gap = np.abs(in_year - day.timetuple().tm_yday)
        gap = np.minimum(gap, 365 - gap)
        w = np.ones(days.size)
        w *= np.where(weekday == day.weekday(), SAME_WEEKDAY, 1.0)
        w *= np.where(month == day.month, SAME_MONTH, 1.0)
        w *= np.where(gap <= NEAR_IN_YEAR_DAYS, NEAR_IN_YEAR, 1.0)
        weights += np.bincount(labels[before], weights=w, minlength=groups.n_groups)
    prior: FloatArray = weights / weights.sum()
    return prior


def group_shares(groups: DayTypeGroups) -> FloatArray:
    """``[G, n_intervals, D]`` every group's share within each interval (rows sum to 1)."""
    return np.stack([groups.expected_share(g) for g in range(groups.n_groups)])


def honest_plan(groups: DayTypeGroups, day: date, key: str = "") -> DayPlan:
    """The plan of ``day``: the calendar prior, its mixture of the groups' shares as the
    expected share, and what the online update needs (``decision/belief.py``)."""
    prior = calendar_prior(groups, day)
    shares = group_shares(groups)
    mixture = np.einsum("g,gkd->kd", prior, shares)
    mixture /= mixture.sum(axis=1, keepdims=True)
    return DayPlan(expected_share=mixture, day=key, group_shares=shares, prior=prior)


def forecast_group(groups: DayTypeGroups, day: date) -> int:
    """The most likely group for ``day`` (what a ``day_started`` record declares)."""
    return int(np.argmax(calendar_prior(groups, day)))


__all__ = ["calendar_prior", "forecast_group", "group_shares", "honest_plan"]
