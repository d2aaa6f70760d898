"""Projection: per-destination values -> the best joint chute counts the guardrails allow.

Each destination ``d`` values every chute count ``k`` (``values[d, k]``, ``-inf`` = the policy
forbids that count). The per-agent argmax can overspend the chute budget, so, as in the
paper, an integer program picks the joint action (a multiple-choice knapsack):

    maximize    sum_{d,k} values[d, k] * x[d, k]
    subject to  sum_k x[d, k] = 1                                   (one level per destination)
                sum_{d,k} k * x[d, k] <= budget                      (in-service chutes)
                sum_{d,k} max(0, k - previous[d]) * x[d, k] <= moves (move cap)
                x[d, k] = 0 outside [minimum_d, maximum_d]           (guardrails)

Exact reductions keep the CP-SAT model small enough for a few-millisecond decision
(``docs/design-facts.md#projection-model-size``: the full Boolean encoding costs tens of ms,
mostly presolve). Dominance keeps an optimal plan; the fixings keep every optimal plan
that dominance leaves:

* **Dominance.** A level that is worth no more than a lower allowed level of the same
  destination is dropped: the lower level uses no more chutes and no more moves.
* **Lagrangian fixing.** For any multipliers ``lam, mu >= 0`` the Lagrangian
  ``L = lam*budget + mu*moves + sum_d max_k (c[d,k] - lam*k - mu*gain[d,k])`` bounds the
  optimum from above, and forcing ``x[d,k] = 1`` bounds it by ``L - (best_d - r[d,k])``. A
  level whose bound is below the value of a known feasible plan cannot be in an optimal plan
  and is dropped. The multipliers come from line searches of the dual (along ``lam``,
  ``mu`` and ``lam - mu``: along the axes alone they stall on a ridge).
* **Move-exact fixing.** The same with only the budget priced and the move cap kept exact
  (a small dynamic program over moves): a tighter bound where the cap binds.

Destinations left with a single level become constants.

**The plan and its ties.** Between the two fixings a dynamic program over (chutes, moves)
finds the best plan of the reduced model (:func:`_exact_plan`); its value makes the second
fixing as strong as it can be, and it is CP-SAT's hint. Where several plans share the best
integer objective, the DP takes the one with the fewest moves, then the fewest chutes taken
away from a destination, then (what is still tied) the lower count for the higher-index
destination; a level worth no more than a lower one of its destination is never used
(dominance). CP-SAT then proves optimality of the reduced model, which is optimality of the
full one, and the DP's plan is returned whenever CP-SAT's objective is no better (it is
never better unless the DP is wrong): the plan therefore does not depend on CP-SAT's
parameters or search order, only on the inputs.

Objective resolution: CP-SAT needs integer coefficients. Each row is shifted by its best
allowed value (so coefficients are ``<= 0`` and small) and scaled so the widest row spans
``RESOLUTION_STEPS`` (2**20) integer steps: ``resolution = widest spread / 2**20``. Each
coefficient is off by at most ``resolution / 2``, so the plan returned is optimal for the
float values to within ``D * resolution`` (about 1e-4 of one row's spread for 120
destinations); the objective reported is recomputed from the float values.

Every CP-SAT status is handled: OPTIMAL and FEASIBLE give counts; INFEASIBLE, MODEL_INVALID
and UNKNOWN (time limit) fall back to the previous counts if they still meet the guardrails
(``fallback_previous``), else to :func:`repair_counts` (``fallback_repaired``). See
:mod:`floor.guardrails` for what gives way when the limits cannot all hold.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from ortools.sat.python import cp_model

from contracts.events import SolverStatus
from decision.values import check_values
from floor.guardrails import GuardrailSet, effective_minimums

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

RESOLUTION_STEPS = 1 << 20
"""Integer steps across the widest row of values (see the module docstring)."""

_LINE_STEPS = 16
"""Most cutting-plane steps of one line search of the dual (it usually stops after a few)."""

_DUAL_ROUNDS = 1
"""Rounds of the three line searches when the move cap is in force (on the 11 hardest
intervals of a large-site bench a second round lowered 2 bounds, by under 140 integer steps;
the plan never depends on it, only how much fixing drops)."""


@dataclass(frozen=True)
class ProjectionResult:
    """The counts chosen for one interval and how they were reached."""

    counts: IntArray
    """[D] chutes per destination."""
    status: SolverStatus
    """``optimal``/``feasible`` from CP-SAT, or which fallback was used."""
    objective: float
    """``sum_d values[d, counts[d]]`` in the policy's units (``-inf`` if a fallback had to use a
    level the policy forbade)."""
    proven_optimal: bool
    """CP-SAT proved the plan optimal (to the objective resolution)."""
    wall_ms: float
    """Time spent in :func:`project`, model build included."""
    moves: int
    """Chutes that gain a destination: ``sum_d max(0, counts - previous_counts)``."""
    solver_status: str
    """CP-SAT's own status name, or ``NOT_RUN`` when the instance was refused before solving."""
    minimums_relaxed: bool
    """Some minimum could not hold this interval (budget or move cap); see guardrails."""
    reason: str | None = None
    """Why a fallback was used, for the decision log."""


def repair_counts(
    previous_counts: IntArray,
    guardrails: GuardrailSet,
    budget: int,
    *,
    max_level: int | None = None,
    ignore_move_cap: bool = False,
) -> IntArray:
    """[D] the previous counts, changed as little as possible to meet the guardrails.

    Deterministic: counts above a maximum are lowered to it; each destination is raised to its
    effective minimum (:func:`floor.guardrails.effective_minimums`, which already respects
    the budget and the move cap); then, while over budget, one chute is taken from the
    destination with the most chutes above its minimum (ties: the largest holding, then the
    highest index). Lowering never costs a move, so the result never needs more moves than
    raising to the minimums does.

    ``max_level`` caps counts at the policy's highest level (``values.shape[1] - 1``).
    """
    previous = np.maximum(np.asarray(previous_counts, dtype=np.int64), 0)
    low, high = guardrails.bounds(previous.shape[0])
    if max_level is not None:
        high = np.minimum(high, max_level)
    budget = max(0, min(int(budget), guardrails.total_eject_chutes))
    cap = guardrails.move_cap(ignore_move_cap)
    floor = np.minimum(effective_minimums(low, previous, budget, cap), high)
    counts = np.maximum(floor, np.minimum(previous, high))
    n = counts.shape[0]
    order = np.arange(n)
    while int(counts.sum()) > budget:
        surplus = counts - floor
        # lexsort: last key is primary. Most surplus, then largest holding, then highest index.
        pick = np.lexsort((order, counts, surplus))[-1]
        counts[pick] -= 1
    return counts


WALL_LIMIT_FACTOR = 20.0
"""Wall-clock cap as a multiple of the deterministic limit: only a stalled machine hits it."""


def project(
    values: FloatArray,
    guardrails: GuardrailSet,
    budget: int,
    previous_counts: IntArray,
    time_limit_s: float = 0.05,
    hint: IntArray | None = None,
    *,
    ignore_move_cap: bool = False,
) -> ProjectionResult:
    """The joint chute counts with the largest summed value that the guardrails allow.

    Args:
        values: [D, K+1] value of giving destination ``d`` exactly ``k`` chutes; ``-inf``
            forbids a level. NaN and ``+inf`` are refused (a policy bug, not a preference).
        guardrails: the site's limits; ``guardrails.version`` goes on the allocation.
        budget: in-service eject chutes this interval (capped at ``total_eject_chutes``).
        previous_counts: [D] in-service chutes each destination holds now; moves are counted
            against these.
        time_limit_s: CP-SAT's deterministic-time limit (reproducible under any machine load;
            wall time is capped at ``WALL_LIMIT_FACTOR`` times it); at the limit the best plan
            found is used.
        hint: [D] counts to start the search from (e.g. the previous decision).
        ignore_move_cap: waive the move cap (the first set-up of a day on an empty floor).

    Raises:
        ValueError: malformed values, or guardrail minimums above the policy's highest level.
    """
    started = time.perf_counter()

    # --- Data: the checked instance, reduced by dominance and Lagrangian fixing -------------
    data = _instance(values, guardrails, budget, previous_counts, ignore_move_cap, started)
    allowed = _allowed_levels(data)
    empty = np.flatnonzero(~allowed.any(axis=1))
    if empty.size:
        return data.fallback("NOT_RUN", f"destination {int(empty[0])} has no allowed level")
    coef = _integer_objective(data.values, allowed)
    plan, lam, mu = _lagrangian_plan(coef, allowed, data.gains, data.budget, data.cap)
    if plan is not None:
        allowed = _fix(coef, allowed, data, plan, lam, mu, move_exact=False)
        plan = _exact_plan(coef, allowed, data.gains, data.previous, data.budget, data.cap)
    if plan is not None:
        allowed = _fix(coef, allowed, data, plan, lam, mu, move_exact=True)

    # --- Variables, Constraints, Objective ------------------------------------------------
    model = _Model()
    variables = _add_variables(model, allowed, data.gains)
    _add_constraints(model, variables, data)
    _add_objective(model, variables, coef)
    start_counts = _best_hint(
        [plan, hint, data.previous],
        coef,
        allowed,
        data.budget,
        data.cap,
        data.gains,
        levels=data.n_levels,
    )
    if start_counts is not None:
        _add_hint(model, variables, start_counts)

    # --- Solve ------------------------------------------------------------------------------
    solver = _solver()
    _set_parameters(solver, time_limit_s)
    name = _solve(solver, model)
    if name in ("OPTIMAL", "FEASIBLE"):
        counts = _chosen_counts(solver, variables)
        if plan is not None and _total(coef, plan) >= _total(coef, counts):
            counts = plan  # the same objective: the tie-broken plan (module docstring)
        return data.result(counts, "optimal" if name == "OPTIMAL" else "feasible", name)
    if name == "INFEASIBLE":
        return data.fallback(name, "no plan meets the guardrails with the allowed levels")
    if name == "MODEL_INVALID":
        return data.fallback(name, f"CP-SAT rejected the model: {model.validate()}")
    return data.fallback(name, f"no plan found within {time_limit_s * 1e3:.1f} ms")


# --- Data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Instance:
    """One checked projection instance: the limits every level is judged against."""

    values: FloatArray
    """[D, L] the policy's values (``L = K+1`` levels)."""
    guardrails: GuardrailSet
    ignore_move_cap: bool
    previous: IntArray
    """[D] chutes each destination holds now (negative counts read as 0)."""
    budget: int
    """In-service chutes, capped at ``total_eject_chutes``."""
    floor: IntArray
    """[D] effective minimums: the guardrail minimums as far as the budget and move cap allow."""
    high: IntArray
    """[D] maximums, capped at the policy's highest level."""
    relaxed: bool
    """Some minimum could not hold (``floor < minimum``)."""
    gains: IntArray
    """[D, L] moves level ``k`` costs: chutes gained over ``previous``."""
    started: float
    """``time.perf_counter()`` when :func:`project` was called."""

    @property
    def n_levels(self) -> int:
        return int(self.values.shape[1])

    @property
    def cap(self) -> int | None:
        """The move cap in force (``None`` when waived)."""
        return self.guardrails.move_cap(self.ignore_move_cap)

    def result(
        self, counts: IntArray, status: SolverStatus, solver: str, reason: str | None = None
    ) -> ProjectionResult:
        """The projection's answer for ``counts``, objective from the float values."""
        return ProjectionResult(
            counts=counts,
            status=status,
            objective=float(self.values[np.arange(self.values.shape[0]), counts].sum()),
            proven_optimal=status == "optimal",
            wall_ms=(time.perf_counter() - self.started) * 1e3,
            moves=int(np.maximum(counts - self.previous, 0).sum()),
            solver_status=solver,
            minimums_relaxed=self.relaxed,
            reason=reason,
        )

    def fallback(self, solver: str, reason: str) -> ProjectionResult:
        """No solver plan: the previous counts if they still meet the guardrails, else the
        :func:`repair_counts` of them."""
        previous = self.previous
        if (
            bool((previous >= self.floor).all())
            and bool((previous <= self.high).all())
            and int(previous.sum()) <= self.budget
        ):
            return self.result(previous.copy(), "fallback_previous", solver, reason)
        repaired = repair_counts(
            previous,
            self.guardrails,
            self.budget,
            max_level=self.n_levels - 1,
            ignore_move_cap=self.ignore_move_cap,
        )
        return self.result(repaired, "fallback_repaired", solver, reason)


def _instance(
    values: FloatArray,
    guardrails: GuardrailSet,
    budget: int,
    previous_counts: IntArray,
    ignore_move_cap: bool,
    started: float,
) -> _Instance:
    """Check :func:`project`'s arguments and derive the per-destination limits.

    Raises:
        ValueError: see :func:`project`.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(f"values must be [D, K+1], got shape {values.shape}")
    n_dest, n_levels = values.shape
    check_values(values, values.shape)
    previous = np.maximum(np.asarray(previous_counts, dtype=np.int64), 0)
    if previous.shape != (n_dest,):
        raise ValueError(f"previous_counts must be [{n_dest}], got {previous.shape}")
    low, high = guardrails.bounds(n_dest)
    if int(low.max()) > n_levels - 1:
        raise ValueError(
            f"guardrails {guardrails.version} require {int(low.max())} chutes for some "
            f"destination but values only go up to {n_levels - 1}"
        )
    high = np.minimum(high, n_levels - 1)
    budget = max(0, min(int(budget), guardrails.total_eject_chutes))
    floor = effective_minimums(low, previous, budget, guardrails.move_cap(ignore_move_cap))
    levels = np.arange(n_levels, dtype=np.int64)
    return _Instance(
        values=values,
        guardrails=guardrails,
        ignore_move_cap=ignore_move_cap,
        previous=previous,
        budget=budget,
        floor=floor,
        high=high,
        relaxed=bool((floor < low).any()),
        gains=np.maximum(levels[None, :] - previous[:, None], 0),
        started=started,
    )


def _allowed_levels(data: _Instance) -> BoolArray:
    """[D, L] the levels within the (effective) guardrails that the policy does not forbid,
    less the dominated ones."""
    levels = np.arange(data.n_levels, dtype=np.int64)
    allowed = (levels[None, :] >= data.floor[:, None]) & (levels[None, :] <= data.high[:, None])
    allowed &= np.isfinite(data.values)
    allowed &= _undominated(data.values, allowed)
    return allowed


def _integer_objective(values: FloatArray, allowed: BoolArray) -> FloatArray:
    """[D, L] integer objective coefficients: rows shifted to their best allowed value, scaled
    to the resolution (see the module docstring); 0 where not allowed."""
    masked = np.where(allowed, values, -np.inf)
    row_best = masked.max(axis=1)
    row_worst = np.where(allowed, values, np.inf).min(axis=1)
    spread = float((row_best - row_worst).max())
    # a spread of denormals would make the scale infinite (hypothesis found -5e-324 vs 0)
    scale = RESOLUTION_STEPS / spread if spread > 1e-12 else 1.0
    coef: FloatArray = np.where(allowed, np.rint((values - row_best[:, None]) * scale), 0.0)
    return coef


# --- Variables -------------------------------------------------------------------------------


class _Model(cp_model.CpModel):
    """``CpModel`` without its pre-PEP8 aliases: OR-Tools 9.15 binds a camel-case copy of every
    ``add_*``/``new_*`` method on each new model (~0.7 ms, more than a typical solve). The proto
    it builds is the same, so the solve is too."""

    def _add_pre_pep8_methods(self) -> None:
        return None


@dataclass(frozen=True)
class _Variables:
    """``x[d, k] = 1`` iff destination ``d`` gets exactly ``k`` chutes.

    Destinations with one allowed level left are constants, not variables: they only add
    ``fixed_chutes`` and ``fixed_moves`` to the constraints.

    The model is written straight into its proto (variable ``i`` is ``x[free_d[i],
    free_k[i]]``), the same entries ``new_bool_var``, ``add_exactly_one``, ``add`` and
    ``maximize`` write one Python call per term: on a 90-variable model that was 0.8 ms of
    a 3 ms projection, the direct writes 0.2 ms.
    """

    free_d: IntArray
    free_k: IntArray
    """Destination and level of each variable, grouped by destination (``free_d`` is sorted)."""
    fixed_level: IntArray
    """[D] the level of each fixed destination (meaningless for the others)."""
    fixed_chutes: int
    fixed_moves: int

    @property
    def size(self) -> int:
        return int(self.free_d.size)


def _add_variables(model: cp_model.CpModel, allowed: BoolArray, gains: IntArray) -> _Variables:
    n_allowed = allowed.sum(axis=1)
    fixed_level = np.argmax(allowed, axis=1)
    fixed = n_allowed == 1
    free_d, free_k = np.nonzero(allowed & ~fixed[:, None])
    proto_vars = model.proto.variables
    for d, k in zip(free_d.tolist(), free_k.tolist(), strict=True):
        x = proto_vars.add()
        x.name = f"x[{d},{k}]"
        x.domain.extend((0, 1))
    return _Variables(
        free_d=free_d,
        free_k=free_k,
        fixed_level=fixed_level,
        fixed_chutes=int(fixed_level[fixed].sum()),
        fixed_moves=int(gains[fixed, fixed_level[fixed]].sum()),
    )


# --- Constraints -----------------------------------------------------------------------------


def _add_constraints(model: cp_model.CpModel, v: _Variables, data: _Instance) -> None:
    # Each destination takes exactly one chute count.
    row_starts = np.searchsorted(v.free_d, np.unique(v.free_d)).tolist()
    row_ends = [*row_starts[1:], v.size] if row_starts else []
    for start, end in zip(row_starts, row_ends, strict=True):
        model.proto.constraints.add().exactly_one.literals.extend(range(start, end))
    # The chosen counts fit in the in-service chutes.
    _add_at_most(model, v.free_k, data.budget - v.fixed_chutes)
    # Chutes gaining a destination stay within the move cap (skipped when it cannot bind).
    cap = data.cap
    free_gains = data.gains[v.free_d, v.free_k]
    if cap is not None:
        row_max_gain = np.zeros(data.values.shape[0], dtype=np.int64)
        np.maximum.at(row_max_gain, v.free_d, free_gains)
        if v.fixed_moves + int(row_max_gain.sum()) > cap:
            _add_at_most(model, free_gains, cap - v.fixed_moves)


def _add_at_most(model: cp_model.CpModel, weights: IntArray, limit: int) -> None:
    """``sum_i weights[i] * x_i <= limit``, zero weights left out (as ``model.add`` does)."""
    terms = np.flatnonzero(weights)
    linear = model.proto.constraints.add().linear
    linear.vars.extend(terms.tolist())
    linear.coeffs.extend(weights[terms].tolist())
    linear.domain.extend((cp_model.INT_MIN, int(limit)))


# --- Objective -------------------------------------------------------------------------------


def _add_objective(model: cp_model.CpModel, v: _Variables, coef: FloatArray) -> None:
    """Maximize ``sum coef * x``: stored as minimizing the negation, scaling factor -1, zero
    coefficients left out (as ``model.maximize`` does)."""
    weights = coef[v.free_d, v.free_k].astype(np.int64)
    terms = np.flatnonzero(weights)
    objective = model.proto.objective
    objective.vars.extend(terms.tolist())
    objective.coeffs.extend((-weights[terms]).tolist())
    objective.scaling_factor = -1.0


def _add_hint(model: cp_model.CpModel, v: _Variables, start_counts: IntArray) -> None:
    """Start the search from ``start_counts`` (a plan the reduced model allows): the same
    proto entries as ``model.add_hint`` per variable, written in two calls."""
    if not v.size:
        return  # no solution_hint message at all, as before
    hint = model.proto.solution_hint
    hint.vars.extend(range(v.size))
    hint.values.extend((start_counts[v.free_d] == v.free_k).astype(np.int64).tolist())


# --- Solve -----------------------------------------------------------------------------------


def _set_parameters(solver: cp_model.CpSolver, time_limit_s: float) -> None:
    # The limit is CP-SAT's deterministic time (work units, ~seconds on one core), not wall
    # time: a loaded machine then returns the same plan as an idle one, so a replayed day
    # decides exactly as before. The wall clock only caps a pathological solve.
    solver.parameters.max_deterministic_time = max(time_limit_s, 1e-6)
    solver.parameters.max_time_in_seconds = max(WALL_LIMIT_FACTOR * time_limit_s, 1e-6)
    solver.parameters.num_workers = 1  # docs/design-facts.md#projection-one-worker
    # The model is already reduced above (dominance, Lagrangian fixing): CP-SAT's own presolve
    # found nothing more on the hard instances of a large-site day and cost 4x the search
    # (median 4.4 ms -> 1.1 ms on 18 instances over 3 ms, all still proven optimal).
    solver.parameters.cp_model_presolve = False
    # Cuts do not pay on these models (tens of Booleans after the reductions): the 53
    # intervals of a large-site bench that reach CP-SAT with >= 10 variables took 57 ms of
    # CPU in all and 7.9 ms at most with them, 36 ms and 2.0 ms without (proofs only: the
    # plan returned is the tie-broken DP plan either way, module docstring).
    solver.parameters.cut_level = 0


def _chosen_counts(solver: cp_model.CpSolver, v: _Variables) -> IntArray:
    """[D] the counts of the solver's plan (fixed destinations at their only level)."""
    counts = v.fixed_level.astype(np.int64)
    chosen = np.array(solver.response_proto.solution, dtype=np.int64)[: v.size] == 1
    counts[v.free_d[chosen]] = v.free_k[chosen]
    return counts


_local = threading.local()


def _solver() -> cp_model.CpSolver:
    """One CpSolver per thread: constructing one costs ~0.5 ms (OR-Tools 9.15), more than a
    small solve; parameters are set on every call, so nothing leaks between decisions."""
    solver = getattr(_local, "solver", None)
    if solver is None:
        solver = _local.solver = cp_model.CpSolver()
    return solver


def _solve(solver: cp_model.CpSolver, model: cp_model.CpModel) -> str:
    """One CP-SAT call, returning the status name; a seam so tests can force each status."""
    # CpSolver.status_name() is broken in OR-Tools 9.15; the returned enum carries the name.
    return str(solver.solve(model).name)


def _undominated(values: FloatArray, allowed: BoolArray) -> BoolArray:
    """[D, L] True where a level is worth strictly more than every lower allowed level."""
    masked = np.where(allowed, values, -np.inf)
    best_below = np.maximum.accumulate(masked, axis=1)
    best_below = np.concatenate(
        [np.full((values.shape[0], 1), -np.inf), best_below[:, :-1]], axis=1
    )
    return masked > best_below


class _Chooser:
    """Each destination's best level at multipliers ``lam``, ``mu`` (ties: fewer chutes), for
    one instance; the bisection asks ~40 times per projection, so the masked coefficients and
    the buffers are made once.

    Each entry is ``(coef - lam * k) - mu * gains`` in that order of float operations, ``-inf``
    for a level not allowed; a zero ``mu`` is skipped (subtracting ``0.0`` is exact). The
    reduced costs, and so the argmax and its ties, do not depend on these shortcuts.
    """

    def __init__(self, coef: FloatArray, allowed: BoolArray, gains: IntArray) -> None:
        self._masked = np.where(allowed, coef, -np.inf)
        self._levels = np.arange(coef.shape[1], dtype=np.int64)
        self._gains = gains
        self._reduced = np.empty_like(self._masked)
        self._per_level = np.empty(coef.shape[1], dtype=np.float64)
        self._per_move = np.empty(gains.shape, dtype=np.float64)

    def __call__(self, lam: float, mu: float) -> IntArray:
        reduced = self._reduced
        np.multiply(lam, self._levels, out=self._per_level)
        np.subtract(self._masked, self._per_level[None, :], out=reduced)
        if mu != 0.0:
            np.multiply(mu, self._gains, out=self._per_move)
            np.subtract(reduced, self._per_move, out=reduced)
        plan: IntArray = reduced.argmax(axis=1)
        return plan


def _lagrangian_plan(
    coef: FloatArray, allowed: BoolArray, gains: IntArray, budget: int, cap: int | None
) -> tuple[IntArray | None, float, float]:
    """A good feasible plan and multipliers ``lam`` (chutes), ``mu`` (moves) with a tight bound.

    The Lagrangian dual is convex and piecewise linear in ``(lam, mu)``; it is minimized by
    line searches: along ``lam``, along ``mu``, then
    along ``(+1, -1)``, which keeps ``lam + mu`` (the price of a gained chute) and trades the
    price of a held chute against it. Alternating along the axes alone stalls on that ridge
    (a large-site interval kept a bound 4,000 integer steps above the optimum, and Lagrangian
    fixing then dropped few levels). Every point evaluated bounds the optimum; the lowest is
    returned. Every plan seen that fits both limits is a candidate incumbent; the best is then
    improved greedily with the chutes and moves it leaves unused. ``None`` if even the lowest
    allowed levels do not fit (the solver will then say INFEASIBLE).
    """
    rows = np.arange(coef.shape[0])
    n_levels = coef.shape[1]
    best: IntArray | None = None
    best_value = -np.inf
    choose = _Chooser(coef, allowed, gains)
    gains_flat = gains.ravel()
    coef_flat = coef.ravel()
    row_offsets = rows * n_levels
    dual = [np.inf, 0.0, 0.0]  # lowest bound seen and its (lam, mu)

    def chutes(plan: IntArray) -> int:
        return int(plan.sum())

    def moves(plan: IntArray) -> int:
        return int(gains_flat[row_offsets + plan].sum())

    def fits(plan: IntArray) -> bool:
        return chutes(plan) <= budget and (cap is None or moves(plan) <= cap)

    def evaluate(lam: float, mu: float) -> tuple[float, int, int]:
        """The bound at ``(lam, mu)`` and its plan's chutes and moves; records the lowest
        bound and the best fitting plan."""
        nonlocal best, best_value
        plan = choose(lam, mu)
        offsets = row_offsets + plan
        used, gained = int(plan.sum()), int(gains_flat[offsets].sum())
        value = float(coef_flat[offsets].sum())
        bound = value + lam * (budget - used) + (mu * (cap - gained) if cap is not None else 0.0)
        if bound < dual[0]:
            dual[:] = [bound, lam, mu]
        if used <= budget and (cap is None or gained <= cap) and value > best_value:
            best, best_value = plan, value
        return bound, used, gained

    def line(lam: float, mu: float, d_lam: float, d_mu: float, low: float, high: float) -> None:
        """Minimize the dual along ``(lam, mu) + t * (d_lam, d_mu)``, ``t`` in [low, high].

        Along a line the dual is convex and piecewise linear, and each plan gives one of its
        pieces (value and slope), so the next point is where the pieces of the two ends
        meet: the minimum once no lower piece shows up there (Kelley's cutting planes in one
        dimension: a few plans per line where bisection needed 16 or more).
        """

        def at(t: float) -> tuple[float, float]:
            bound, used, gained = evaluate(lam + t * d_lam, mu + t * d_mu)
            slope = d_lam * (budget - used) + (d_mu * (cap - gained) if cap is not None else 0.0)
            return bound, slope

        f_low, s_low = at(low)
        if s_low >= 0:
            return
        f_high, s_high = at(high)
        if s_high <= 0:
            return
        for _ in range(_LINE_STEPS):
            t = (f_high - f_low + s_low * low - s_high * high) / (s_low - s_high)
            if not low < t < high:
                return
            f_t, s_t = at(t)
            if f_t <= f_low + s_low * (t - low) + 1e-9 * (abs(f_t) + 1.0):
                return  # t is where the two pieces meet and nothing lies below: the minimum
            if s_t >= 0:
                high, f_high, s_high = t, f_t, s_t
            else:
                low, f_low, s_low = t, f_t, s_t

    plan = choose(0.0, 0.0).astype(np.int64)
    if fits(plan):
        return plan, 0.0, 0.0
    top = float(-coef.min()) + 1.0  # above this every destination takes its lowest level
    lowest = np.argmax(allowed, axis=1).astype(np.int64)
    if not fits(lowest):
        return None, 0.0, 0.0
    best, best_value = lowest, float(coef_flat[row_offsets + lowest].sum())
    for _ in range(_DUAL_ROUNDS if cap is not None else 1):
        lam, mu = dual[1], dual[2]
        line(lam, mu, 1.0, 0.0, -lam, top - lam)
        if cap is None:
            break
        lam, mu = dual[1], dual[2]
        line(lam, mu, 0.0, 1.0, -mu, top - mu)
        lam, mu = dual[1], dual[2]
        line(lam, mu, 1.0, -1.0, -lam, mu)
    lam, mu = dual[1], dual[2]
    assert best is not None

    # Greedy fill: spend leftover chutes and moves on the best single-level upgrades.
    plan = best.copy()
    levels = np.arange(n_levels)[None, :]
    while True:
        extra_chutes = levels - plan[:, None]
        extra_moves = gains - gains[rows, plan][:, None]
        ok = allowed & (extra_chutes <= budget - chutes(plan))
        if cap is not None:
            ok &= extra_moves <= cap - moves(plan)
        gain = np.where(ok, coef - coef[rows, plan][:, None], 0.0)
        flat = int(np.argmax(gain))
        if gain.flat[flat] <= 0:
            break
        plan[flat // n_levels] = flat % n_levels
    return plan, lam, mu


def _exact_plan(
    coef: FloatArray,
    allowed: BoolArray,
    gains: IntArray,
    previous: IntArray,
    budget: int,
    cap: int | None,
) -> IntArray | None:
    """[D] the best plan over the ``allowed`` levels, ties broken as the module docstring says.

    A dynamic program over the destinations that still have a choice, with state (chutes,
    moves) spent above each destination's lowest allowed level. After Lagrangian fixing a
    hard large-site interval has a few hundred levels and a state space of a few hundred
    cells: 0.3-1 ms. Searching from the greedy plan instead, CP-SAT took up to tens of
    milliseconds; with the optimum known, the second fixing leaves it a model it proves in
    about one. ``None`` if the lowest levels do not fit.

    Ties: the DP maximizes ``coef * weight - tie`` with ``tie`` = (chutes gained) * ``spread``
    + (chutes released), so among plans of equal objective it takes the fewest moves, then
    the fewest chutes taken away; what is still tied goes to the lower level of the
    destination decided last (the highest index). All sums are integers below 2**53, exact
    in float64; when the objective range would not leave room, ``weight`` is 1 and ``tie`` 0.
    """
    lowest = np.argmax(allowed, axis=1).astype(np.int64)
    rows = np.arange(coef.shape[0])
    room_chutes = budget - int(lowest.sum())
    room_moves = 0 if cap is None else cap - int(gains[rows, lowest].sum())
    if room_chutes < 0 or room_moves < 0:
        return None
    free = np.flatnonzero(allowed.sum(axis=1) > 1)
    plan: IntArray = lowest.copy()
    if free.size == 0:
        return plan

    levels = np.arange(coef.shape[1], dtype=np.int64)
    released = np.maximum(previous[:, None] - levels[None, :], 0)
    spread = int(released.max()) * free.size + 1  # more than any plan's total released
    tie = (gains * spread + released)[free]
    held = allowed[free]
    tie_total = int(
        (
            np.where(held, tie, tie.min()).max(axis=1) - np.where(held, tie, tie.max()).min(axis=1)
        ).sum()
    )
    weight = tie_total + 1
    coef_total = float(-np.where(allowed[free], coef[free], 0.0).min(axis=1).sum())
    if (coef_total + 1.0) * weight >= 2.0**52:
        weight, tie = 1, np.zeros_like(tie)

    # values[i][c, m]: the best of the first i free destinations within c chutes and m moves
    # above their lowest levels. Each level is one shifted maximum; which level won is
    # recovered on the way back, the first in level order that reaches the value (the
    # same one a strict ``>`` going forward keeps: the sums are exact).
    options: list[list[tuple[int, int, int, float]]] = []
    values = [np.zeros((room_chutes + 1, room_moves + 1))]
    for i, d in enumerate(free.tolist()):
        base = int(lowest[d])
        row = []
        for k in np.flatnonzero(allowed[d]).tolist():
            extra = k - base
            gained = 0 if cap is None else int(gains[d, k] - gains[d, base])
            if extra <= room_chutes and gained <= room_moves:
                row.append((k, extra, gained, float(coef[d, k]) * weight - float(tie[i, k])))
        options.append(row)
        previous_value = values[-1]
        value = previous_value + row[0][3]  # the lowest level: no extra chutes or moves
        for _, extra, gained, worth in row[1:]:
            target = value[extra:, gained:]
            np.maximum(
                target,
                previous_value[: room_chutes + 1 - extra, : room_moves + 1 - gained] + worth,
                out=target,
            )
        values.append(value)

    spare_chutes, spare_moves = room_chutes, room_moves
    for i in range(free.size - 1, -1, -1):
        reached = values[i + 1][spare_chutes, spare_moves]
        k, extra, gained = next(
            (k, extra, gained)
            for k, extra, gained, worth in options[i]
            if extra <= spare_chutes
            and gained <= spare_moves
            and values[i][spare_chutes - extra, spare_moves - gained] + worth == reached
        )
        plan[free[i]] = k
        spare_chutes -= extra
        spare_moves -= gained
    return plan


def _total(coef: FloatArray, plan: IntArray) -> float:
    """The integer objective of ``plan`` (exact: integers far below 2**53)."""
    return float(coef[np.arange(coef.shape[0]), plan].sum())


def _reduced_cost_keep(
    coef: FloatArray,
    allowed: BoolArray,
    gains: IntArray,
    budget: int,
    cap: int | None,
    plan: IntArray,
    lam: float,
    mu: float,
) -> BoolArray:
    """[D, L] the levels that can still be in an optimal plan (Lagrangian fixing)."""
    reduced = np.where(
        allowed, coef - lam * np.arange(coef.shape[1])[None, :] - mu * gains, -np.inf
    )
    row_best = reduced.max(axis=1)
    bound = lam * budget + (mu * cap if cap is not None else 0.0) + float(row_best.sum())
    incumbent = float(coef[np.arange(coef.shape[0]), plan].sum())
    # Objectives are integers up to ~2**27; the margin only absorbs float rounding.
    margin = 1e-6 * (abs(bound) + abs(incumbent) + 1.0)
    level_bound = bound - (row_best[:, None] - reduced)
    keep: BoolArray = allowed & (level_bound >= incumbent - margin)
    return keep


_MOVE_EXACT_MIN_LEVELS = 20
"""Free levels from which the move-exact bound is worth its ~0.3 ms (CP-SAT proves smaller
models in well under a millisecond)."""


def _fix(
    coef: FloatArray,
    allowed: BoolArray,
    data: _Instance,
    incumbent: IntArray,
    lam: float,
    mu: float,
    *,
    move_exact: bool,
) -> BoolArray:
    """``allowed`` less the levels no plan as good as ``incumbent`` can use (Lagrangian
    fixing, then the move-exact bound where enough levels are left to pay for it)."""
    allowed = allowed & _reduced_cost_keep(
        coef, allowed, data.gains, data.budget, data.cap, incumbent, lam, mu
    )
    counts = allowed.sum(axis=1)
    if (
        move_exact
        and data.cap is not None
        and int(counts[counts > 1].sum()) >= _MOVE_EXACT_MIN_LEVELS
    ):
        allowed = allowed & _move_exact_keep(
            coef, allowed, data.gains, data.budget, data.cap, incumbent, lam
        )
    return allowed


def _move_exact_keep(
    coef: FloatArray,
    allowed: BoolArray,
    gains: IntArray,
    budget: int,
    cap: int,
    incumbent: IntArray,
    lam: float,
) -> BoolArray:
    """[D, L] the levels that can still be in an optimal plan, by a tighter Lagrangian bound.

    Only the budget is priced (``lam`` per chute); the move cap is kept exact, which a
    dynamic program over the few moves left does cheaply: for each destination the best of
    the others within every number of moves (prefix and suffix max-plus convolutions).
    The move cap is small and binds on the hard intervals, where this bound is much tighter
    than the plain Lagrangian: on the 11 hardest intervals of a large-site bench CP-SAT's
    variables went from 576 to 223 in all (90 -> 26 on the hardest). Levels of every optimal
    plan are kept.
    """
    free = np.flatnonzero(allowed.sum(axis=1) > 1)
    fixed = np.flatnonzero(allowed.sum(axis=1) == 1)
    levels = np.arange(coef.shape[1], dtype=np.int64)
    priced = coef - lam * levels[None, :]
    fixed_level = np.argmax(allowed[fixed], axis=1)
    room = cap - int(gains[fixed, fixed_level].sum())
    base = lam * budget + float(priced[fixed, fixed_level].sum())
    if free.size < 2 or room < 0:
        return allowed

    # best[i, m]: destination free[i]'s best priced level using at most m moves.
    n = free.size
    level_gain = gains[free]
    ok = allowed[free] & (level_gain <= room)
    best = np.full((n, room + 1), -np.inf)
    at = np.nonzero(ok)
    np.maximum.at(best, (at[0], level_gain[at]), priced[free][at])
    best = np.maximum.accumulate(best, axis=1)

    # conv(a, b)[m] = max_{j <= m} a[j] + b[m - j] (at most m moves in all).
    m_idx = np.arange(room + 1)
    shift = np.maximum(m_idx[:, None] - m_idx[None, :], 0)
    over = np.where(m_idx[None, :] > m_idx[:, None], -np.inf, 0.0)

    def conv(a: FloatArray, b: FloatArray) -> FloatArray:
        out: FloatArray = (a[..., None, :] + b[..., shift] + over).max(axis=-1)
        return out

    prefix = np.zeros((n + 1, room + 1))
    suffix = np.zeros((n + 1, room + 1))
    for i in range(n):
        prefix[i + 1] = conv(prefix[i], best[i])
        suffix[n - 1 - i] = conv(best[n - 1 - i], suffix[n - i])
    others = conv(prefix[:n], suffix[1:])  # [n, room + 1]: all free rows but i

    spare = np.clip(room - level_gain, 0, room)
    bound = base + priced[free] + np.take_along_axis(others, spare, axis=1)
    value = _total(coef, incumbent)
    # Each bound is a sum of at most D terms: float rounding stays far below 1e-9 of the
    # magnitudes summed (the value compared against is an integer).
    margin = 1e-9 * (abs(base) + abs(value) + float(np.abs(priced[free][ok]).sum()) + 1.0)
    keep = allowed.copy()
    keep[free] &= ok & (bound >= value - margin)
    return keep


def _best_hint(
    candidates: list[IntArray | None],
    coef: FloatArray,
    allowed: BoolArray,
    budget: int,
    cap: int | None,
    gains: IntArray,
    levels: int,
) -> IntArray | None:
    """The candidate plan with the best objective that the reduced model allows."""
    rows = np.arange(coef.shape[0])
    best: IntArray | None = None
    best_value = -np.inf
    for candidate in candidates:
        if candidate is None:
            continue
        plan = np.asarray(candidate, dtype=np.int64)
        if plan.shape != rows.shape or bool((plan < 0).any()) or bool((plan >= levels).any()):
            continue
        if not bool(allowed[rows, plan].all()) or int(plan.sum()) > budget:
            continue
        if cap is not None and int(gains[rows, plan].sum()) > cap:
            continue
        value = float(coef[rows, plan].sum())
        if value > best_value:
            best, best_value = plan, value
    return best


__all__ = ["RESOLUTION_STEPS", "ProjectionResult", "project", "repair_counts"]
