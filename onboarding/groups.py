"""Day-type groups for a new site, their count chosen by a stated criterion.

The criterion is the **mean silhouette** of the day clustering, over ``k`` in a range: for each
day, (b - a) / max(a, b), where ``a`` is its mean distance to the days of its own group and
``b`` to the days of the nearest other group, in the same scaled feature space the groups are
fitted in (``twin.groups``: log volume, destination mix, intraday profile). The ``k`` with the
highest mean wins; a tie (within ``SILHOUETTE_TIE``) goes to the smaller ``k`` (fewer groups:
more days per group, steadier shares). Only the fit days are clustered.
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
    criterion: str = "mean silhouette (highest; ties within 0.005 to fewer groups)"


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
) -> GroupChoice:
    """Cluster the fit days for every ``k`` in ``candidates``, keep the best by silhouette."""
    stack = np.stack([np.asarray(c, dtype=np.int64) for c in counts])
    points, _, _ = _scaled(day_features(stack), stack.shape[2])
    scores = {k: silhouette(points, kmeans(points, k, FIT_SEED)) for k in candidates}
    best = max(scores.values())
    k = min(k for k, s in scores.items() if s >= best - SILHOUETTE_TIE)
    fitted = fit_groups(stack, list(labels), k, FIT_SEED, scenario_name=scenario_name)
    silhouettes = {str(k_): round(s, 6) for k_, s in scores.items()}
    full_meta = {**fitted.meta, **meta, "k_criterion": "silhouette", "silhouettes": silhouettes}
    groups = DayTypeGroups(
        fitted.scenario,
        fitted.probs,
        fitted.volume_mean,
        fitted.volume_std,
        fitted.members,
        full_meta,
    )
    return GroupChoice(groups, k, scores)


__all__ = ["FIT_SEED", "SILHOUETTE_TIE", "GroupChoice", "choose_groups", "k_range", "silhouette"]
