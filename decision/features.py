"""Per-destination observations: the one feature function the twin, training and the worker call.

Every quantity is scaled so a typical destination on a typical interval sits near 1: package
counts by the site's mean packages per destination per interval, chute counts by the most a
destination may hold. The same network then serves days of different volume, and a
destination's observation means the same on every site of the same scenario.

A policy reads a named subset of the features (:data:`FEATURE_SETS`; an ONNX file lists its
own in its ``features`` metadata), so a feature added here does not break a policy trained
before it: the engine computes every feature, each policy takes its columns by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from decision.state import ARRIVAL_LAGS, SiteState
from floor.scenario import Scenario

FEATURE_NAMES: tuple[str, ...] = (
    *(f"arrivals_lag{lag}" for lag in range(ARRIVAL_LAGS)),
    "recirculated",
    "backlog",
    "chutes_held",
    "chutes_held_in_service",
    "chutes_open",
    "expected_share",
    "expected_load",
    "free_chutes",
    "time_of_day",
    "plan_trust",
)
N_FEATURES = len(FEATURE_NAMES)

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "base": FEATURE_NAMES[: FEATURE_NAMES.index("plan_trust")],
    "trust": FEATURE_NAMES,
}
"""Named feature subsets a policy is trained on. ``base``: the features of every policy trained
before the plan's trust was observable. ``trust``: adds ``plan_trust``, the online plan's trust
(``decision.belief``; 1 on a day that looks like the groups predicted), so one network can be
sharp on a recognized day and hedge on a day that departs from every group."""

ObservationBatch = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FeatureScale:
    """Site constants that turn counts into unit-free features."""

    packages_per_destination_interval: float
    """Mean first inductions of one destination in one interval on a typical day."""
    max_chutes_per_destination: int
    """The largest chute count an agent may request."""

    @classmethod
    def for_site(
        cls,
        mean_packages_per_hour: float,
        interval_minutes: float,
        n_destinations: int,
        max_chutes_per_destination: int,
    ) -> FeatureScale:
        per_interval = mean_packages_per_hour * interval_minutes / 60.0
        return cls(per_interval / n_destinations, max_chutes_per_destination)

    @classmethod
    def of(cls, scenario: Scenario) -> FeatureScale:
        """The scale of a scenario: the one place the twin, training and the worker get it."""
        return cls.for_site(
            scenario.mean_packages_per_hour,
            scenario.interval_minutes,
            scenario.n_destinations,
            scenario.max_chutes_per_destination,
        )


def feature_columns(names: tuple[str, ...]) -> npt.NDArray[np.intp]:
    """The columns of ``names`` in :func:`observe`'s batch.

    Raises:
        ValueError: a name this engine does not compute, or a repeated name.
    """
    unknown = [name for name in names if name not in FEATURE_NAMES]
    if unknown or len(set(names)) != len(names) or not names:
        raise ValueError(
            f"features {','.join(names)}: unknown or repeated {','.join(unknown) or 'names'}; "
            f"this engine computes {','.join(FEATURE_NAMES)}"
        )
    return np.asarray([FEATURE_NAMES.index(name) for name in names], dtype=np.intp)


def policy_features(meta: Mapping[str, str], width: object, label: str) -> tuple[str, ...]:
    """The features an ONNX policy reads: its ``features`` metadata, or every feature for a
    file that lists none; checked against its input width and what the engine computes.

    Raises:
        ValueError: a listed feature the engine does not compute, or a width that disagrees.
    """
    listed = meta.get("features")
    names = (
        tuple(name.strip() for name in listed.split(",")) if listed is not None else FEATURE_NAMES
    )
    try:
        feature_columns(names)
    except ValueError as exc:
        raise ValueError(f"{label}: trained on {exc}") from None
    if isinstance(width, int) and width != len(names):
        raise ValueError(
            f"{label}: input width {width} != {len(names)} features ({','.join(names)})"
        )
    return names


def observe(state: SiteState, scale: FeatureScale) -> ObservationBatch:
    """Observations of all destinations as one batch ``[D, N_FEATURES]`` (float32).

    One array per interval, never one call per destination: the policy runs one batched
    inference on it.
    """
    d = state.n_destinations
    per_pkg = 1.0 / scale.packages_per_destination_interval
    per_chute = 1.0 / scale.max_chutes_per_destination
    held_mask = state.chute_owner >= 0
    owners = state.chute_owner[held_mask]
    open_held = np.bincount(owners, weights=state.chute_open[held_mask], minlength=d)
    in_service = int(state.chute_available.sum())
    free = in_service - int(state.held_available().sum())
    recent_total = float(state.arrivals[0].sum())

    obs = np.empty((d, N_FEATURES), dtype=np.float32)
    obs[:, 0:ARRIVAL_LAGS] = (state.arrivals.T * per_pkg).astype(np.float32)
    col = ARRIVAL_LAGS
    obs[:, col] = state.recirculated * per_pkg
    obs[:, col + 1] = state.backlog * per_pkg
    obs[:, col + 2] = state.held() * per_chute
    obs[:, col + 3] = state.held_available() * per_chute
    obs[:, col + 4] = open_held * per_chute
    obs[:, col + 5] = state.expected_share * d
    obs[:, col + 6] = state.expected_share * recent_total * per_pkg
    obs[:, col + 7] = free / max(state.n_chutes, 1)
    obs[:, col + 8] = state.interval_index / max(state.n_intervals, 1)
    obs[:, col + 9] = state.plan_trust
    return obs
