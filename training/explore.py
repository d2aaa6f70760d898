"""Exploration as policy wrappers, so training acts through the serving decision path.

A wrapper is a :class:`decision.policies.Policy`: the trainer hands it to an engine made by
``decision.build.build_engine`` and every action, greedy or exploring, goes through the same
features, projection, chute map, validator and fallback as the worker's. Exploring agents get
random values; the projection keeps the joint action budget-feasible and within the guardrails.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from decision.features import ObservationBatch
from decision.policies import Policy
from decision.state import SiteState
from floor.plan import DayPlan

FloatArray = npt.NDArray[np.float64]


class EpsilonGreedy:
    """Per-agent epsilon-greedy over an inner policy's values.

    :meth:`draw` decides, once per interval, which agents explore; :meth:`values` then replaces
    their rows with uniform noise as wide as the inner values. With no agent drawn (or after
    :meth:`greedy`), it returns the inner values unchanged.
    """

    def __init__(self, inner: Policy, rng: np.random.Generator) -> None:
        self.inner = inner
        self.rng = rng
        self.name = inner.name
        self.version = inner.version
        self._mask: npt.NDArray[np.bool_] | None = None

    def draw(self, n_agents: int, epsilon: float) -> bool:
        """Pick the exploring agents for the next :meth:`values` call; True if any explore."""
        mask = np.asarray(self.rng.random(n_agents) < epsilon, dtype=np.bool_)
        self._mask = mask if mask.any() else None
        return self._mask is not None

    def greedy(self) -> None:
        """The next :meth:`values` call returns the inner policy's values."""
        self._mask = None

    def start_day(self, plan: DayPlan) -> None:
        self.inner.start_day(plan)

    def values(self, state: SiteState, observations: ObservationBatch) -> FloatArray:
        values = self.inner.values(state, observations)
        mask, self._mask = self._mask, None
        if mask is None:
            return values
        explored = values.copy()
        spread = float(np.abs(values).max()) + 1.0
        explored[mask] = self.rng.uniform(-spread, spread, size=(int(mask.sum()), values.shape[1]))
        return explored


class GaussianNoise:
    """An inner policy's values plus N(0, sd) noise: a behaviour policy that still goes
    everywhere a reasonable one would (the worst-group predictor's rollouts)."""

    def __init__(self, inner: Policy, rng: np.random.Generator, sd: float) -> None:
        self.inner = inner
        self.rng = rng
        self.sd = sd
        self.name = inner.name
        self.version = inner.version

    def start_day(self, plan: DayPlan) -> None:
        self.inner.start_day(plan)

    def values(self, state: SiteState, observations: ObservationBatch) -> FloatArray:
        values = self.inner.values(state, observations)
        return values + self.rng.normal(0.0, self.sd, size=values.shape)


__all__ = ["EpsilonGreedy", "GaussianNoise"]
