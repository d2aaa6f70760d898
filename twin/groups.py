"""Day-type groups: historical days clustered into the distributions the policy is robust to.

The paper splits a site's history into m groups (9 small, 21 large) and trains against the
worst one, each group being a multinomial over (interval, destination) estimated from its
days. Groups are only worth being robust to if they differ, so days are clustered on the three
things that decide how many chutes a destination needs when: the volume level, the destination
mix and the intraday shape. Each block of features is scaled to the same total variance, so
none of them drowns the others (the mix alone has one dimension per destination).

Groups are numbered by increasing mean volume: group 0 is the lightest day type. The groups
themselves (data, file format, loading) are on the ground floor: ``floor/daytypes.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from floor.daytypes import (
    DayTypeGroups,
    default_groups_path,
)
from floor.scenario import Scenario
from twin.day import DayDemand
from twin.history import generate_history, spread_over_ticks

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

DEFAULT_HISTORY_START = date(2021, 1, 1)
DEFAULT_HISTORY_DAYS = 1461
"""Four years, as in the paper's large setting."""
DEFAULT_HISTORY_SEED = 2025
DEFAULT_FIT_SEED = 0
FEATURE_WEIGHTS = {"volume": 1.5, "mix": 1.0, "shape": 1.0}
"""Relative weight of each feature block; volume is what recirculation reacts to most."""


def day_features(counts: IntArray | FloatArray) -> FloatArray:
    """[N, 1 + D + n_intervals] raw features per day: log volume, mix, intraday profile.

    Square roots of the shares (the Hellinger embedding) keep small destinations from being
    pure noise while still letting a 5x spike of one destination stand out.
    """
    values = np.asarray(counts, dtype=np.float64)
    totals = values.sum(axis=(1, 2))
    safe = np.maximum(totals, 1.0)[:, None]
    mix = np.sqrt(values.sum(axis=1) / safe)
    profile = np.sqrt(values.sum(axis=2) / safe)
    return np.concatenate([np.log1p(totals)[:, None], mix, profile], axis=1)


def _scaled(features: FloatArray, n_destinations: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Centre the features and scale each block to total variance = its weight."""
    mean = features.mean(axis=0)
    centred = features - mean
    scale = np.ones(features.shape[1])
    blocks = {
        "volume": slice(0, 1),
        "mix": slice(1, 1 + n_destinations),
        "shape": slice(1 + n_destinations, features.shape[1]),
    }
    for name, block in blocks.items():
        variance = float(centred[:, block].var(axis=0).sum())
        scale[block] = np.sqrt(FEATURE_WEIGHTS[name] / variance) if variance > 0 else 0.0
    return centred * scale, mean, scale


def kmeans(points: FloatArray, k: int, seed: int, n_init: int = 4, max_iter: int = 100) -> IntArray:
    """Labels from seeded k-means++ and Lloyd iterations; the best of ``n_init`` runs.

    Deterministic for a seed. An emptied cluster is re-seeded at the point farthest from its
    centre, so exactly ``k`` non-empty clusters come back whenever there are ``k`` distinct
    points.
    """
    n = points.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= groups <= days, got {k} groups for {n} days")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6B]))
    best_labels = np.zeros(n, dtype=np.int64)
    best_inertia = np.inf
    for _ in range(n_init):
        centres = np.empty((k, points.shape[1]))
        centres[0] = points[rng.integers(n)]
        closest = ((points - centres[0]) ** 2).sum(axis=1)
        for j in range(1, k):
            total = closest.sum()
            index = int(rng.choice(n, p=closest / total)) if total > 0 else int(rng.integers(n))
            centres[j] = points[index]
            closest = np.minimum(closest, ((points - centres[j]) ** 2).sum(axis=1))
        labels = np.full(n, -1, dtype=np.int64)
        for _iteration in range(max_iter):
            distance = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
            new_labels = distance.argmin(axis=1).astype(np.int64)
            for j in range(k):
                if not np.any(new_labels == j):
                    own = distance[np.arange(n), new_labels]
                    far = int(own.argmax())
                    new_labels[far] = j
            if np.array_equal(new_labels, labels):
                break
            labels = new_labels
            for j in range(k):
                centres[j] = points[labels == j].mean(axis=0)
        inertia = float(((points - centres[labels]) ** 2).sum())
        if inertia < best_inertia:
            best_inertia, best_labels = inertia, labels
    return best_labels


def fit_groups(
    counts: Sequence[IntArray] | IntArray,
    labels: Sequence[str],
    n_groups: int,
    seed: int,
    scenario_name: str = "custom",
) -> DayTypeGroups:
    """Cluster days (each [n_intervals, D] counts) into ``n_groups`` day types.

    A group's distribution is the pooled counts of its days normalized to sum 1: the
    multinomial maximum-likelihood estimate. Groups are ordered by mean volume.
    """
    stack = np.stack([np.asarray(c, dtype=np.int64) for c in counts])
    if stack.ndim != 3:
        raise ValueError("counts must be a sequence of [n_intervals, D] matrices")
    if len(labels) != stack.shape[0]:
        raise ValueError(f"{len(labels)} labels for {stack.shape[0]} days")
    points, _, _ = _scaled(day_features(stack), stack.shape[2])
    assignment = kmeans(points, n_groups, seed)
    totals = stack.sum(axis=(1, 2)).astype(np.float64)
    groups = [np.flatnonzero(assignment == j) for j in range(n_groups)]
    groups.sort(key=lambda idx: (float(totals[idx].mean()), int(idx[0])))
    probs = np.stack([stack[idx].sum(axis=0).astype(np.float64) for idx in groups])
    probs /= np.maximum(probs.sum(axis=(1, 2), keepdims=True), 1.0)
    return DayTypeGroups(
        scenario=scenario_name,
        probs=probs,
        volume_mean=np.array([totals[idx].mean() for idx in groups]),
        volume_std=np.array([totals[idx].std() for idx in groups]),
        members=tuple(tuple(labels[int(i)] for i in idx) for idx in groups),
        meta={"fit_seed": seed, "n_days": int(stack.shape[0]), "feature_weights": FEATURE_WEIGHTS},
    )


def nearest_group(groups: DayTypeGroups, counts: IntArray) -> int:
    """The group closest to one day's [n_intervals, D] counts.

    Distance: Hellinger distance between the day's normalized matrix and the group's, plus
    the absolute log ratio of the day's volume to the group's mean volume; both are ~0.1-0.5
    between neighbouring day types, so neither term dominates.
    """
    values = np.asarray(counts, dtype=np.float64)
    total = max(float(values.sum()), 1.0)
    day = np.sqrt(values / total)
    hellinger = np.sqrt(0.5 * ((groups.sqrt_probs - day[None]) ** 2).sum(axis=(1, 2)))
    volume = np.abs(np.log(total) - groups.log_volume)
    return int((hellinger + volume).argmin())


def sample_day(groups: DayTypeGroups, g: int, scenario: Scenario, seed: int) -> DayDemand:
    """One day of group ``g``: volume ~ Normal(mean, std) clipped at 0, then multinomial."""
    groups.check_fits(scenario)
    if not 0 <= g < groups.n_groups:
        raise ValueError(f"group {g} out of range 0..{groups.n_groups - 1}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, g]))
    total = max(0, round(rng.normal(groups.volume_mean[g], groups.volume_std[g])))
    flat = groups.probs[g].reshape(-1)
    counts = rng.multinomial(total, flat / flat.sum()).reshape(groups.probs.shape[1:])
    return DayDemand(
        scenario=scenario,
        arrivals=spread_over_ticks(counts.astype(np.int64), scenario, rng),
        expected_share=groups.expected_share(g),
        day_start=scenario.day_start,
        label=f"group {g} seed {seed}",
    )


def group_table(groups: DayTypeGroups) -> list[dict[str, Any]]:
    """One row per group: size, volume, heaviest destination's share and the peak interval."""
    rows: list[dict[str, Any]] = []
    for g in range(groups.n_groups):
        mix = groups.probs[g].sum(axis=0)
        profile = groups.probs[g].sum(axis=1)
        rows.append(
            {
                "group": g,
                "n_days": len(groups.members[g]),
                "volume_mean": round(float(groups.volume_mean[g]), 1),
                "volume_std": round(float(groups.volume_std[g]), 1),
                "top_destination": int(mix.argmax()),
                "top_share": round(float(mix.max()), 4),
                "peak_interval": int(profile.argmax()),
                "peak_share": round(float(profile.max()), 4),
            }
        )
    return rows


def format_group_table(groups: DayTypeGroups) -> str:
    """``group_table`` as aligned text for the CLI."""
    rows = group_table(groups)
    columns = list(rows[0]) if rows else []
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.rjust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r[c]).rjust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def build_default_groups(scenario: Scenario) -> DayTypeGroups:
    """The shipped groups: four synthetic years (seed 2025) fitted with seed 0.

    Regenerate the shipped files with
    ``python -c "from twin.groups import write_default_groups; write_default_groups()"``.
    """
    days = list(
        generate_history(
            scenario, DEFAULT_HISTORY_START, DEFAULT_HISTORY_DAYS, DEFAULT_HISTORY_SEED
        )
    )
    groups = fit_groups(
        [d.counts for d in days],
        [d.label for d in days],
        scenario.default_groups,
        DEFAULT_FIT_SEED,
        scenario_name=scenario.name,
    )
    meta = dict(groups.meta)
    meta.update(
        history_start=DEFAULT_HISTORY_START.isoformat(),
        history_days=DEFAULT_HISTORY_DAYS,
        history_seed=DEFAULT_HISTORY_SEED,
        source="twin.history.generate_history",
    )
    return DayTypeGroups(
        groups.scenario, groups.probs, groups.volume_mean, groups.volume_std, groups.members, meta
    )


def write_default_groups(names: Sequence[str] = ("small", "large")) -> list[Path]:
    """Fit and write ``floor/scenarios/groups-<name>.npz`` for the built-in scenarios."""
    from floor.scenario import load_scenario

    paths = []
    for name in names:
        path = default_groups_path(name)
        build_default_groups(load_scenario(name)).save(path)
        paths.append(path)
    return paths
