"""Day-type groups for a new site, their count chosen by a stated criterion.

The criterion is the **mean silhouette** of the day clustering, over ``k`` in a range: for each
day, (b - a) / max(a, b), where ``a`` is its mean distance to the days of its own group and
``b`` to the days of the nearest other group, in the same scaled feature space the groups are
fitted in (``twin.groups``: log volume, destination mix, intraday profile). The ``k`` with the
highest mean wins; a tie (within ``SILHOUETTE_TIE``) goes to the smaller ``k`` (fewer groups:
more days per group, steadier shares). Only the fit days are clustered.

Mean silhouette is known to favour few groups on data without sharp clusters (day types are a
seasonal continuum: on a two-year synthetic site it picks k = 2). ``criterion="gap"`` is the
stated alternative, opt-in (``site onboard --groups-criterion gap``): the **gap statistic**
(Tibshirani, Walther and Hastie, 2001) with a minimum group size. For each admissible ``k``,
``gap(k)`` = mean over :data:`GAP_REFERENCES` reference sets (drawn uniformly in the bounding box
of the scaled features, seeded by :data:`GAP_SEED`) of log W*(k), minus log W(k) of the days,
where W is the pooled within-group sum of squares; ``s(k)`` is the references' standard
deviation x sqrt(1 + 1/B). A ``k`` is admissible when its smallest group has at least
:func:`min_group_days` days (a week, and 2% of the fit days: a group must have days to estimate
its shares from). The choice is the smallest admissible ``k`` with ``gap(k) >= gap(k+1) -
s(k+1)``, else the largest admissible ``k``. Deterministic: fixed k-means and reference seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from floor.daytypes import DayTypeGroups
from twin.groups import _scaled, day_features, fit_groups, kmeans

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SILHOUETTE_TIE = 0.005
FIT_SEED = 0
"""The k-means seed (as the shipped groups: ``twin.groups.DEFAULT_FIT_SEED``)."""
CRITERIA = ("silhouette", "gap")
GAP_REFERENCES = 10
GAP_SEED = 0x6A9
SILHOUETTE_CRITERION = "mean silhouette (highest; ties within 0.005 to fewer groups)"
GAP_CRITERION = (
    "gap statistic (smallest k with gap(k) >= gap(k+1) - s(k+1); groups of >= {min_days} days)"
)


def silhouette(points: FloatArray, labels: IntArray) -> float:
    """Mean silhouette of a clustering (0 for one cluster; a singleton day scores 0)."""
    k = int(labels.max()) + 1
    if k < 2:
        return 0.0
    squared = (points**2).sum(axis=1)
    distance = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * points @ points.T, 0.0))
    sizes = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.stack([distance[:, labels == j].sum(axis=1) for j in range(k)], axis=1)
    own = labels
    own_size = sizes[own]
    a = np.where(own_size > 1, sums[np.arange(len(labels)), own] / np.maximum(own_size - 1, 1), 0.0)
    means = sums / np.maximum(sizes, 1.0)[None, :]
    means[np.arange(len(labels)), own] = np.inf
    b = means.min(axis=1)
    scores = np.where(own_size > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(scores.mean())


@dataclass(frozen=True)
class GroupChoice:
    """The fitted groups, the ``k`` chosen and every candidate ``k``'s silhouette."""

    groups: DayTypeGroups
    k: int
    silhouettes: dict[int, float]
    criterion: str = SILHOUETTE_CRITERION
    gaps: dict[int, tuple[float, float, int]] | None = None
    """``criterion="gap"``: (gap, s, smallest group's days) of every candidate ``k``."""


def min_group_days(n_days: int) -> int:
    """The fewest days a group may hold under the gap criterion: a week, and 2% of the days."""
    return max(7, -(-2 * n_days // 100))


def _log_within(points: FloatArray, labels: IntArray) -> float:
    """log of the pooled within-group sum of squares."""
    total = 0.0
    for j in range(int(labels.max()) + 1):
        members = points[labels == j]
        total += float(((members - members.mean(axis=0)) ** 2).sum())
    return float(np.log(max(total, 1e-300)))


def gap_choice(
    points: FloatArray, candidates: range
) -> tuple[int, dict[int, tuple[float, float, int]]]:
    """The gap criterion of the module doc: (chosen k, {k: (gap, s, smallest group)})."""
    rng = np.random.default_rng(np.random.SeedSequence([GAP_SEED]))
    low, high = points.min(axis=0), points.max(axis=0)
    references = [rng.uniform(low, high, size=points.shape) for _ in range(GAP_REFERENCES)]
    floor_days = min_group_days(points.shape[0])
    table: dict[int, tuple[float, float, int]] = {}
    for k in candidates:
        labels = kmeans(points, k, FIT_SEED)
        smallest = int(np.bincount(labels, minlength=k).min())
        ref = np.array([_log_within(r, kmeans(r, k, FIT_SEED)) for r in references])
        gap = float(ref.mean()) - _log_within(points, labels)
        spread = float(ref.std()) * float(np.sqrt(1.0 + 1.0 / GAP_REFERENCES))
        table[k] = (round(gap, 6), round(spread, 6), smallest)
    admissible = [k for k in candidates if table[k][2] >= floor_days]
    if not admissible:  # too few days for any k's groups to hold a week: the fewest groups
        return min(candidates), table
    for k in admissible:
        if k + 1 in admissible and table[k][0] >= table[k + 1][0] - table[k + 1][1]:
            return k, table
    return max(admissible), table


def k_range(n_days: int, k_min: int, k_max: int) -> range:
    """Candidate counts: at most one group per 7 fit days (a group needs days to estimate
    its shares from), at least ``k_min``."""
    top = max(k_min, min(k_max, n_days // 7))
    return range(k_min, top + 1)


def choose_groups(
    counts: Sequence[IntArray],
    labels: Sequence[str],
    scenario_name: str,
    candidates: range,
    meta: dict[str, object],
    criterion: str = "silhouette",
) -> GroupChoice:
    """Cluster the fit days for every ``k`` in ``candidates``, keep the best by ``criterion``
    (:data:`CRITERIA`; the module doc states both)."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown groups criterion {criterion!r}: use {', '.join(CRITERIA)}")
    stack = np.stack([np.asarray(c, dtype=np.int64) for c in counts])
    points, _, _ = _scaled(day_features(stack), stack.shape[2])
    scores = {k: silhouette(points, kmeans(points, k, FIT_SEED)) for k in candidates}
    gaps = None
    if criterion == "gap":
        k, gaps = gap_choice(points, candidates)
        stated = GAP_CRITERION.format(min_days=min_group_days(len(stack)))
    else:
        best = max(scores.values())
        k = min(k for k, s in scores.items() if s >= best - SILHOUETTE_TIE)
        stated = SILHOUETTE_CRITERION
    fitted = fit_groups(stack, list(labels), k, FIT_SEED, scenario_name=scenario_name)
    silhouettes = {str(k_): round(s, 6) for k_, s in scores.items()}
    full_meta = {**fitted.meta, **meta, "k_criterion": criterion, "silhouettes": silhouettes}
    if gaps is not None:
        full_meta["gaps"] = {str(k_): list(v) for k_, v in gaps.items()}
    groups = DayTypeGroups(
        fitted.scenario,
        fitted.probs,
        fitted.volume_mean,
        fitted.volume_std,
        fitted.members,
        full_meta,
    )
    return GroupChoice(groups, k, scores, stated, gaps)


__all__ = [
    "CRITERIA",
    "FIT_SEED",
    "SILHOUETTE_TIE",
    "GroupChoice",
    "choose_groups",
    "gap_choice",
    "k_range",
    "min_group_days",
    "silhouette",
]
