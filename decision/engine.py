"""The one decision path: features -> policy -> projection -> validation -> allocation event.

The twin, replay, training evaluation and the live worker all call :meth:`DecisionEngine.decide`
so a policy is judged on exactly the code that serves it. Whatever the policy outputs (NaN,
wrong shape, an exception), an allocation leaves the engine only after the solver-independent
validator accepted it; otherwise the previous allocation, repaired to the guardrails, is used
and flagged in ``solver_status``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from contracts.events import AllocationDecided, SolverStatus
from decision.chute_map import map_chutes
from decision.features import FeatureScale, ObservationBatch, observe
from decision.policies import Policy
from decision.projection import project, repair_counts
from decision.state import IDLE, SiteState
from decision.validate import validate_allocation
from decision.values import check_values
from floor.guardrails import GuardrailSet
from floor.plan import DayPlan
from floor.site import SiteLayout

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class GuardrailViolation(RuntimeError):
    """An allocation failed validation even after the fallback: it is never published."""


@dataclass(frozen=True)
class Decision:
    """One interval's allocation and how it was reached."""

    owner: IntArray
    """[C] destination index per chute, ``IDLE`` for unallocated."""
    counts: IntArray
    """[D] chutes per destination."""
    event: AllocationDecided
    moves: int
    proven_optimal: bool
    timings_ms: dict[str, float]
    policy_error: str | None = None
    """Why the policy's values were discarded, if they were."""
    observations: ObservationBatch | None = field(default=None, repr=False)
    """The features the policy saw (training stores them; serving ignores them)."""
    audit: dict[str, object] = field(default_factory=dict)


class DecisionEngine:
    """Decides one site's allocation per interval under one policy and one guardrail set."""

    def __init__(
        self,
        layout: SiteLayout,
        policy: Policy,
        guardrails: GuardrailSet,
        scale: FeatureScale,
        time_limit_s: float = 0.05,
    ) -> None:
        self.layout = layout
        self.policy = policy
        self.guardrails = guardrails
        self.scale = scale
        self.time_limit_s = time_limit_s
        self._levels = scale.max_chutes_per_destination + 1
        self._hint: IntArray | None = None
        self._day = ""

    def start_day(self, plan: DayPlan) -> None:
        self._hint = None
        self._day = plan.day
        self.policy.start_day(plan)

    @property
    def hint(self) -> IntArray | None:
        """The solver hint (last decided counts): part of a worker's persisted site state, so
        a restarted worker solves with the same hint and decides exactly as before."""
        return self._hint

    def resume(self, plan: DayPlan, hint: IntArray | None) -> None:
        """Continue a day from persisted state: the plan and the solver hint it had."""
        self.start_day(plan)
        self._hint = None if hint is None else np.asarray(hint, dtype=np.int64)

    def decision_id(self, interval_index: int) -> str:
        """Stable per (site, day, interval, policy version): a redelivered decision has the
        same id, a decision of another day (or another run of the same date) never does."""
        policy = self.policy
        site, day = self.layout.site_id, self._day
        return f"{site}/{day}/{interval_index}/{policy.name}@{policy.version}"

    def decide(self, state: SiteState, interval_start: datetime, now: datetime) -> Decision:
        """Allocation for ``state.interval_index``, validated, as a contract event."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        observations = observe(state, self.scale)
        t1 = time.perf_counter()
        timings["features"] = (t1 - t0) * 1e3

        policy_error: str | None = None
        values: FloatArray | None
        try:
            values = self.policy.values(state, observations)
            check_values(values, (state.n_destinations, self._levels))
        except Exception as error:  # a broken policy must not stop the floor
            policy_error = f"{type(error).__name__}: {error}"
            values = None
        t2 = time.perf_counter()
        timings["policy"] = (t2 - t1) * 1e3

        previous_counts = state.held_available()
        budget = int(state.chute_available.sum())
        setup = state.is_day_setup
        status: SolverStatus
        if values is None:
            counts = repair_counts(previous_counts, self.guardrails, budget, ignore_move_cap=setup)
            status = (
                "fallback_previous"
                if np.array_equal(counts, previous_counts)
                else ("fallback_repaired")
            )
            proven = False
        else:
            result = project(
                values,
                self.guardrails,
                budget=budget,
                previous_counts=previous_counts,
                time_limit_s=self.time_limit_s,
                hint=self._hint,
                ignore_move_cap=setup,
            )
            counts, status, proven = result.counts, result.status, result.proven_optimal
        t3 = time.perf_counter()
        timings["projection"] = (t3 - t2) * 1e3

        owner, moves, violations = self._map_and_validate(counts, state, setup)
        if violations:
            counts = repair_counts(previous_counts, self.guardrails, budget, ignore_move_cap=setup)
            status, proven = "fallback_repaired", False
            owner, moves, violations = self._map_and_validate(counts, state, setup)
            if violations:
                raise GuardrailViolation("; ".join(violations))
        t4 = time.perf_counter()
        timings["validation"] = (t4 - t3) * 1e3
        timings["total"] = (t4 - t0) * 1e3
        self._hint = counts

        event = self._event(state, counts, owner, status, interval_start, now)
        return Decision(
            owner=owner,
            counts=counts,
            event=event,
            moves=moves,
            proven_optimal=proven,
            timings_ms=timings,
            policy_error=policy_error,
            observations=observations,
        )

    def _map_and_validate(
        self, counts: IntArray, state: SiteState, setup: bool
    ) -> tuple[IntArray, int, list[str]]:
        """Physical chutes for ``counts`` and every guardrail they break (none, normally)."""
        owner, moves = map_chutes(counts, state.chute_owner, state.chute_available)
        violations = validate_allocation(
            owner,
            counts,
            self.guardrails,
            state.chute_available,
            state.chute_owner,
            ignore_move_cap=setup,
        )
        return owner, moves, violations

    def _event(
        self,
        state: SiteState,
        counts: IntArray,
        owner: IntArray,
        status: SolverStatus,
        interval_start: datetime,
        now: datetime,
    ) -> AllocationDecided:
        layout = self.layout
        chute_map = {
            layout.chute_ids[c]: layout.destinations[int(owner[c])]
            for c in np.flatnonzero(owner != IDLE).tolist()
        }
        per_destination = {
            layout.destinations[d]: int(counts[d]) for d in range(state.n_destinations)
        }
        decision_id = self.decision_id(state.interval_index)
        return AllocationDecided(
            event_id=decision_id,
            event_time=now,
            site_id=layout.site_id,
            decision_id=decision_id,
            interval_index=state.interval_index,
            interval_start=interval_start,
            chute_map=chute_map,
            chutes_per_destination=per_destination,
            policy_name=self.policy.name,
            policy_version=self.policy.version,
            guardrail_version=self.guardrails.version,
            solver_status=status,
        )
