"""The plan, updated online: a posterior over the day-type groups from the arrivals seen so far,
and a correction for a mix that departs from every group.

Why in the engine: the twin, training, replay and the worker all decide through
:meth:`decision.engine.DecisionEngine.decide`, so the plan a policy sees is updated the same
way everywhere, causally (interval ``k``'s plan uses the first inductions of intervals
``< k`` only, the ones ``SiteState.arrivals[0]`` reports at each decision).

1. **Posterior.** Each interval's first inductions are a multinomial draw from the interval's
   share under the day's group: ``log p(g) += sum_d n_d log share_g[k, d]``. On a day of one of
   the site's groups it concentrates on that group within an interval or two.
2. **Trust.** Before each update, the posterior predicts the interval's mix. The total-variation
   distance between the day's observed and predicted destination totals, beyond what sampling
   noise explains, says how far the day departs from every group (a customer grown or gone, a
   drifted mix, another site's day). Trust falls from 1 to 0 as that excess grows to
   :data:`TRUST_SCALE`.
3. **Correction.** The planned share of interval ``k`` is the posterior mixture of the groups'
   shares, blended by ``1 - trust`` toward a corrected share: the mixture with each destination
   scaled by its observed / predicted total of the day so far, averaged with the last
   interval's observed mix (:data:`RECENT_WEIGHT`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from decision.state import SiteState
    from floor.plan import DayPlan

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SHARE_FLOOR = 1e-6
"""Smallest share in the likelihood: a destination a group never saw does not veto it."""
TRUST_SCALE = 0.10
"""Excess total-variation distance at which the plan is not trusted at all."""
RECENT_WEIGHT = 0.5
"""Weight of the last interval's observed mix in an untrusted plan: when the day departs from
every group, the groups' intraday shapes are wrong too, and what the floor does now is the best
guess of what it does next."""
RATIO_SMOOTHING = 5.0
"""Packages added to observed and predicted totals in the correction (few-package noise)."""


class PlanBelief:
    """The online plan of one site-day (see the module docstring)."""

    def __init__(self, group_shares: FloatArray, prior: FloatArray) -> None:
        if group_shares.ndim != 3 or prior.shape != (group_shares.shape[0],):
            raise ValueError(f"group shares {group_shares.shape} and prior {prior.shape}")
        self._shares = group_shares
        self.log_post: FloatArray = np.log(np.clip(prior, 1e-300, 1.0))
        d = group_shares.shape[2]
        self.observed: FloatArray = np.zeros(d)
        self.predicted: FloatArray = np.zeros(d)
        self.last: FloatArray | None = None
        """The last observed interval's destination mix (what the floor does right now)."""
        self.seen_through = -1

    @classmethod
    def of(cls, plan: DayPlan) -> PlanBelief | None:
        """The online plan of an honest day plan; None for a plan whose ``expected_share`` is
        the whole plan (the oracle reference, or a plan a user supplies)."""
        if plan.group_shares is None or plan.prior is None:
            return None
        return cls(plan.group_shares, plan.prior)

    @property
    def n_intervals(self) -> int:
        return int(self._shares.shape[1])

    def posterior(self) -> FloatArray:
        z = np.exp(self.log_post - self.log_post.max())
        out: FloatArray = z / z.sum()
        return out

    def mixture(self, k: int) -> FloatArray:
        """``[D]`` the posterior's expected share of interval ``k``."""
        out: FloatArray = self.posterior() @ self._shares[:, min(k, self.n_intervals - 1), :]
        return out

    def observe(self, k: int, counts: IntArray) -> None:
        """Interval ``k``'s first inductions (once; a repeat or an older interval is ignored)."""
        if k <= self.seen_through or not 0 <= k < self.n_intervals:
            return
        n = float(counts.sum())
        self.predicted += n * self.mixture(k)
        self.observed += counts
        if n > 0:
            self.last = counts / n
        # The log of interval k's shares only, when it is observed: the whole [G, K, D] array
        # at the day's start cost a large site ~4 ms of its first decision, which a fleet's
        # aligned day starts pay a hundred times at once (bench fleet). Elementwise, so the
        # same bits as slicing the log of the whole array.
        log_shares = np.log(np.clip(self._shares[:, k, :], SHARE_FLOOR, 1.0))
        self.log_post = self.log_post + log_shares @ counts.astype(np.float64)
        self.log_post -= self.log_post.max()
        self.seen_through = k

    def trust(self) -> float:
        """1: the day so far looks like the groups predicted; 0: it departs from all of them."""
        total = float(self.observed.sum())
        if total <= 0:
            return 1.0
        observed = self.observed / total
        predicted = self.predicted / total
        distance = 0.5 * float(np.abs(observed - predicted).sum())
        noise = 0.5 * float(np.sqrt(2.0 * predicted * (1.0 - predicted) / (np.pi * total)).sum())
        excess = max(0.0, distance - 2.0 * noise)
        return float(np.clip(1.0 - excess / TRUST_SCALE, 0.0, 1.0))

    def share(self, k: int, trust: float | None = None) -> FloatArray:
        """``[D]`` the plan's share of interval ``k`` (sums to 1); ``trust``: :meth:`trust`,
        when the caller has it already."""
        planned = self.mixture(k)
        trust = self.trust() if trust is None else trust
        if trust < 1.0:
            ratio = (self.observed + RATIO_SMOOTHING) / (self.predicted + RATIO_SMOOTHING)
            corrected = planned * ratio
            corrected /= corrected.sum()
            if self.last is not None:
                corrected = (1.0 - RECENT_WEIGHT) * corrected + RECENT_WEIGHT * self.last
            planned = trust * planned / planned.sum() + (1.0 - trust) * corrected
        total = float(planned.sum())
        out: FloatArray = planned / total if total > 0 else np.full(planned.size, 1 / planned.size)
        return out

    def plan_state(self, state: SiteState) -> SiteState:
        """``state`` with the plan as known at its decision: updated with the interval that
        just ended (``state.arrivals[0]``), never a later one. The engine and the PettingZoo
        environment both observe through this, so every caller sees the same plan."""
        k = state.interval_index
        if k > 0:
            self.observe(k - 1, state.arrivals[0])
        trust = self.trust()
        return replace(state, expected_share=self.share(k, trust), plan_trust=trust)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (floats round-trip exactly), for a worker's snapshot."""
        return {
            "log_post": self.log_post.tolist(),
            "observed": self.observed.tolist(),
            "predicted": self.predicted.tolist(),
            "seen_through": self.seen_through,
            "last": None if self.last is None else self.last.tolist(),
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.log_post = np.asarray(data["log_post"], dtype=np.float64)
        self.observed = np.asarray(data["observed"], dtype=np.float64)
        self.predicted = np.asarray(data["predicted"], dtype=np.float64)
        self.seen_through = int(data["seen_through"])
        last = data.get("last")
        self.last = None if last is None else np.asarray(last, dtype=np.float64)


__all__ = ["PlanBelief"]
