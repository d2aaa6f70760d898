"""How well a day fits the site's day-type groups, and the site's own history they came from.

A plan-based policy is told the share of the day's nearest group (``twin.groups.nearest_group``,
what a file day's ``expected_share`` is). When the day is unlike every group (another site's
history, a customer that moved its volume), that plan is wrong and a policy that trusts it is
judged on a day it was never meant for. The **fit score** says how wrong:

    fit score = total-variation distance between the day's destination mix (its counts summed
                over the day, normalized) and the destination mix of its nearest group,

i.e. the fraction of the day's packages that would have to change destination for the day to
have the plan's mix (0: the plan's mix exactly; 1: disjoint destinations). Only the mix is
scored: it decides which destinations need chutes, and over a whole day it is measured with
little sampling noise (a few thousand packages on the small site already give ~0.02).

The **threshold** comes from the groups' own days: every day of the history the groups were
fitted on (``meta`` ``history_seed``, ``history_start``, ``history_days``, regenerated with
``twin.history.generate_history``) is scored the same way, and a day fits when it scores no
higher than the worst of them: a day further from its plan than every day the groups were
built from is unlike all of them. The worst own days are spike and promotion days (0.37 on the
small site, 0.20 on the large one, where the median own day is ~0.04); held-out days of the
same site stay under it, days of another site (another history seed, same layout) score ~0.5.
A high quantile instead of the maximum would flag some of the site's own ordinary days on the
small site (6,000 packages a day: its mix is noisier). Groups without that provenance (fitted
from a folder of files) fall back to ``FALLBACK_THRESHOLD``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from floor.daytypes import DayTypeGroups
from floor.scenario import Scenario
from twin.groups import (
    DEFAULT_HISTORY_DAYS,
    DEFAULT_HISTORY_SEED,
    DEFAULT_HISTORY_START,
    nearest_group,
)
from twin.history import generate_history

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

FALLBACK_THRESHOLD = 0.3
"""Threshold for groups whose history cannot be regenerated: between the shipped sites' worst
own days (0.20 large, 0.37 small) and another site's days (~0.5)."""


@dataclass(frozen=True)
class SiteHistory:
    """The history a site's groups were fitted on: ``n_days`` days from ``start``, ``seed``."""

    seed: int
    start: date
    n_days: int

    @property
    def end(self) -> date:
        """The first day after the fit period: held-out days start here."""
        return self.start + timedelta(days=self.n_days)


def site_history(groups: DayTypeGroups) -> SiteHistory:
    """The fit period from the groups' ``meta`` (the shipped groups: seed 2025, 2021-2024).

    Groups without that provenance get the shipped defaults (``twin.groups``)."""
    meta = groups.meta
    return SiteHistory(
        seed=int(meta.get("history_seed", DEFAULT_HISTORY_SEED)),
        start=date.fromisoformat(str(meta.get("history_start", DEFAULT_HISTORY_START))),
        n_days=int(meta.get("history_days", DEFAULT_HISTORY_DAYS)),
    )


def has_history(groups: DayTypeGroups) -> bool:
    """Whether the groups name the synthetic history they were fitted on."""
    return all(k in groups.meta for k in ("history_seed", "history_start", "history_days"))


class GroupFit:
    """Scores days against one set of groups; the groups' day mixes computed once."""

    def __init__(self, groups: DayTypeGroups) -> None:
        self.groups = groups
        mix = groups.probs.sum(axis=1)
        self.mix: FloatArray = mix / mix.sum(axis=1, keepdims=True)
        """[G, D] each group's destination mix over the day."""

    def nearest(self, counts: IntArray) -> int:
        return nearest_group(self.groups, counts)

    def score(self, counts: IntArray) -> tuple[float, int]:
        """(fit score, nearest group) of one day's [n_intervals, D] counts."""
        values = np.asarray(counts, dtype=np.float64)
        mix = values.sum(axis=0) / max(float(values.sum()), 1.0)
        g = self.nearest(counts)
        return 0.5 * float(np.abs(mix - self.mix[g]).sum()), g

    def scores(self, days: Iterable[IntArray]) -> FloatArray:
        return np.array([self.score(c)[0] for c in days], dtype=np.float64)


_THRESHOLDS: dict[tuple[str, int, SiteHistory], float] = {}


def fit_threshold(scenario: Scenario, groups: DayTypeGroups) -> float:
    """The highest score among the groups' own history days (~1.5 s on the large site: four
    years regenerated and scored; cached per process)."""
    if not has_history(groups):
        return FALLBACK_THRESHOLD
    history = site_history(groups)
    key = (
        scenario.model_dump_json(),
        zlib.crc32(groups.probs.tobytes() + groups.volume_mean.tobytes()),
        history,
    )
    if key not in _THRESHOLDS:
        days = generate_history(scenario, history.start, history.n_days, history.seed)
        scores = GroupFit(groups).scores(day.counts for day in days)
        _THRESHOLDS[key] = float(scores.max())
    return _THRESHOLDS[key]


@dataclass(frozen=True)
class DayFit:
    """A day's fit against the site's groups."""

    score: float
    nearest_group: int
    threshold: float

    @property
    def fits(self) -> bool:
        return self.score <= self.threshold

    def warning(self, name: str) -> str | None:
        """One line for stderr when the day fits none of the groups, else ``None``."""
        if self.fits:
            return None
        return (
            f"warning: day {name} matches none of the site's groups (fit score "
            f"{self.score:.2f}, groups' own days <= {self.threshold:.2f}); "
            "plan-based policies will be told a wrong plan"
        )


def day_fit(scenario: Scenario, groups: DayTypeGroups, counts: IntArray) -> DayFit:
    """Score one day's [n_intervals, D] counts against ``groups`` and their own days."""
    groups.check_fits(scenario)
    score, g = GroupFit(groups).score(counts)
    return DayFit(score, g, fit_threshold(scenario, groups))


__all__ = [
    "FALLBACK_THRESHOLD",
    "DayFit",
    "GroupFit",
    "SiteHistory",
    "day_fit",
    "fit_threshold",
    "has_history",
    "site_history",
]
