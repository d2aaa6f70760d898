"""Named seed streams: every seed the project derives comes from here.

Two rules keep runs reproducible and keep training away from the days it is judged on:

- **Evaluation days** are ``EVALUATION_BASE + k`` for ``k`` in ``[0, EVALUATION_SPAN)``. They are
  plain integers on purpose: the shipped reports name them, and ``chuteflow simulate --seed``
  with the same integer replays the same day.
- **Every other stream** (training days, their twins, robust-target branch days, validation
  days, network initialisation, exploration, the worst-group predictor's rollouts) is derived
  by :func:`derive` from the stream's *name* and integer keys through numpy's ``SeedSequence``.
  Derived seeds are at least ``2**32``, so they can never equal an evaluation seed or a
  user-given ``--seed`` below that, and two streams never share a seed by construction of a
  magic offset (the old ``1000 * seed + episode`` met ``100_000 + k`` at seed 100).
"""

from __future__ import annotations

import zlib
from enum import Enum

import numpy as np

EVALUATION_BASE = 100_000
EVALUATION_SPAN = 100_000
DERIVED_FLOOR = 2**32


class Stream(Enum):
    """The named streams; the value is hashed into the seed, so renaming one changes it."""

    TRAIN_DAY = "train-day"
    """An episode's sampled day and the twin that plays it: keys (run seed, episode)."""
    TRAIN_BRANCH_DAY = "train-branch-day"
    """The robust target's day per group: keys (run seed, episode, group)."""
    TRAIN_BASELINE_DAY = "train-baseline-day"
    """The heuristic's reference day per group for the group adversary: keys (run seed, group)."""
    TRAIN_EXPLORATION = "train-exploration"
    """Epsilon-greedy draws and replay sampling: keys (run seed,)."""
    NETWORK_INIT = "network-init"
    """Initial weights: keys (run seed, which network)."""
    VALIDATION_DAY = "validation-day"
    """Days the trainer picks its best network on: keys (group, k)."""
    PREDICTOR_ROLLOUT = "predictor-rollout"
    """The worst-group predictor's behaviour rollouts: keys (run seed[, episode[, group]])."""
    PREDICTOR_FIT = "predictor-fit"
    """The predictor's train/test split and minibatches: keys (run seed,)."""
    SHADOW_TWIN = "shadow-twin"
    """The counterfactual twin of a live site-day (container fills): keys (date ordinal,)."""


def derive(stream: Stream, *keys: int) -> int:
    """A seed for ``stream`` at ``keys``: deterministic, >= 2**32, distinct across streams."""
    # the key count is part of the entropy, so (seed, episode) and (seed, episode, 0) differ
    entropy = [zlib.crc32(stream.value.encode()), len(keys), *(int(k) for k in keys)]
    high, low = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return DERIVED_FLOOR + ((int(high) << 32) | int(low)) % (2**62)


def evaluation_seed(k: int) -> int:
    """The ``k``-th evaluation day seed (the shipped reports use ``k`` in 0..4)."""
    if not 0 <= k < EVALUATION_SPAN:
        raise ValueError(f"evaluation seed index {k} outside 0..{EVALUATION_SPAN - 1}")
    return EVALUATION_BASE + k


__all__ = ["EVALUATION_BASE", "Stream", "derive", "evaluation_seed"]
