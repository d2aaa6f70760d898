"""The one decision path: features -> policy -> projection -> validation -> allocation event.

The twin, replay, training evaluation and the live worker all call :meth:`DecisionEngine.decide`
so a policy is judged on exactly the code that serves it. Whatever the policy outputs (NaN,
wrong shape, an exception), an allocation leaves the engine only after the solver-independent
validator accepted it; otherwise the previous allocation, repaired to the guardrails, is used
and flagged in ``solver_status``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from contracts.events import AllocationDecided, SolverStatus
from decision.belief import PlanBelief
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


class DeadlineMissed(TimeoutError):
    """The policy gave no values within its inference deadline."""


def call_with_deadline(
    policy: Policy, state: SiteState, observations: ObservationBatch, deadline_s: float
) -> FloatArray:
    """``policy.values`` on a daemon thread, given up after ``deadline_s``.

    A thread because a policy that hangs cannot be interrupted in Python; the floor still gets
    its allocation (from the fallback) on time. The hung call keeps its thread (daemon: it never
    blocks the worker's exit); onnxruntime releases the GIL while it runs, so a slow session
    does not stall the worker either.
    """
    box: list[FloatArray | BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            box.append(policy.values(state, observations))
        except BaseException as error:  # handed to the caller's thread below
            box.append(error)
        finally:
            done.set()

    threading.Thread(target=run, name=f"policy-{policy.name}", daemon=True).start()
    if not done.wait(deadline_s):
        raise DeadlineMissed(f"no values within the {deadline_s * 1e3:.0f} ms inference deadline")
    result = box[0]
    if isinstance(result, BaseException):
        raise result
    return result


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
    fallback_reason: str | None = None
    """Set when the engine's fallback policy decided instead (the policy error, or a deadline)."""
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
        *,
        fallback: Policy | None = None,
        deadline_s: float | None = None,
        policy_sha256: str | None = None,
    ) -> None:
        """``fallback``: the policy that decides an interval whose policy raised, gave NaN/inf
        or a wrong shape, or missed ``deadline_s`` (the live worker sets both; the twin and
        evaluation leave them off so a broken policy shows as the repair path it is).
        ``policy_sha256``: the artifact hash written on every allocation."""
        self.layout = layout
        self.policy = policy
        self.guardrails = guardrails
        self.scale = scale
        self.time_limit_s = time_limit_s
        self.fallback = fallback
        self.deadline_s = deadline_s
        self.policy_sha256 = policy_sha256
        self._levels = scale.max_chutes_per_destination + 1
        self._hint: IntArray | None = None
        self._day = ""
        self.belief: PlanBelief | None = None
        """The online plan of an honest day plan (``decision/belief.py``); None: the plan's
        ``expected_share`` is used as given (oracle reference, or a user's plan)."""

    def start_day(self, plan: DayPlan) -> None:
        self._hint = None
        self._day = plan.day
        self.belief = PlanBelief.of(plan)
        self.policy.start_day(plan)
        if self.fallback is not None:
            self.fallback.start_day(plan)

    @property
    def hint(self) -> IntArray | None:
        """The solver hint (last decided counts): part of a worker's persisted site state, so
        a restarted worker solves with the same hint and decides exactly as before."""
        return self._hint

    def resume(
        self, plan: DayPlan, hint: IntArray | None, belief: dict[str, Any] | None = None
    ) -> None:
        """Continue a day from persisted state: the plan, the solver hint and the online plan's
        state it had."""
        self.start_day(plan)
        self._hint = None if hint is None else np.asarray(hint, dtype=np.int64)
        if belief is not None and self.belief is not None:
            self.belief.restore(belief)

    def decision_id(self, interval_index: int) -> str:
        """Stable per (site, day, interval, policy version): a redelivered decision has the
        same id, a decision of another day (or another run of the same date) never does."""
        policy = self.policy
        site, day = self.layout.site_id, self._day
        return f"{site}/{day}/{interval_index}/{policy.name}@{policy.version}"

    def _values(
        self, state: SiteState, observations: ObservationBatch
    ) -> tuple[FloatArray | None, str | None, str | None]:
        """(values, policy error, fallback reason): the policy's values, else the fallback's."""
        shape = (state.n_destinations, self._levels)
        try:
            if self.deadline_s is None:
                values = self.policy.values(state, observations)
            else:
                values = call_with_deadline(self.policy, state, observations, self.deadline_s)
            check_values(values, shape)
            return values, None, None
        except Exception as error:  # a broken policy must not stop the floor
            policy_error = f"{type(error).__name__}: {error}"[:400]
        if self.fallback is None:
            return None, policy_error, None
        try:
            values = self.fallback.values(state, observations)
            check_values(values, shape)
        except Exception as error:
            return None, f"{policy_error}; fallback {type(error).__name__}: {error}"[:400], None
        return values, policy_error, policy_error

    def decide(
        self,
        state: SiteState,
        interval_start: datetime,
        now: datetime,
        *,
        route_revision: int | None = None,
    ) -> Decision:
        """Allocation for ``state.interval_index``, validated, as a contract event."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        cpu0 = time.thread_time()
        if self.belief is not None:
            state = self.belief.plan_state(state)
        observations = observe(state, self.scale)
        t1 = time.perf_counter()
        timings["features"] = (t1 - t0) * 1e3

        values, policy_error, fallback_reason = self._values(state, observations)
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
        # this thread's CPU time (ONNX sessions and CP-SAT run single-threaded on it): the
        # cycle's own cost, which wall time mixes with whatever else the machine runs
        timings["cpu"] = (time.thread_time() - cpu0) * 1e3
        self._hint = counts

        event = self._event(state, counts, owner, status, interval_start, now)
        update: dict[str, object] = {}
        if route_revision is not None:
            update["route_revision"] = route_revision
        if fallback_reason is not None and self.fallback is not None:
            update.update(
                policy_name=self.fallback.name,
                policy_version=self.fallback.version,
                policy_sha256=None,
                fallback_reason=fallback_reason,
                fallback_from=f"{self.policy.name}@{self.policy.version}",
            )
        if update:
            event = event.model_copy(update=update)
        return Decision(
            owner=owner,
            counts=counts,
            event=event,
            moves=moves,
            proven_optimal=proven,
            timings_ms=timings,
            policy_error=policy_error,
            fallback_reason=fallback_reason,
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
            policy_sha256=self.policy_sha256,
        )
