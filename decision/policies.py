"""Policies: observation batch in, a value per destination and chute count out.

A policy never allocates chutes itself. It says how much each destination would gain from
holding ``k`` chutes (``values[d, k]``); the projection picks the budget-feasible joint
action with the largest summed value (the paper's value decomposition), so every policy,
learned or not, goes through the same guardrails.

Shipped here:

- ``static``: the traditional planning system. One plan per day from the day type's
  expected shares (at least one chute per destination where the site has enough chutes),
  held all day.
- ``proportional``: every interval, chute targets in proportion to the last interval's
  arrivals plus the re-induction backlog.
- ``lookahead``: an evaluation-only reference that sees the next interval's true arrivals and
  values chute counts with the twin's own capacity physics. It bounds how much better
  perfect information could do; it cannot run live.
- ``OnnxPolicy``: any ONNX model mapping ``[D, F]`` observations to ``[D, K+1]`` values,
  served with one batched onnxruntime call per interval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from decision.features import ObservationBatch, feature_columns, policy_features
from decision.state import SiteState
from floor.plan import DayPlan
from floor.site import SitePhysics

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class Policy(Protocol):
    """Maps the observation batch to values ``[D, K+1]``; one call per interval."""

    name: str
    version: str

    def start_day(self, plan: DayPlan) -> None:
        """Called once before the first interval of a day."""

    def values(self, state: SiteState, observations: ObservationBatch) -> FloatArray:
        """Value of holding ``k`` chutes for every destination ``d``: shape ``[D, K+1]``."""
        ...


def static_plan_counts(share: FloatArray, chutes: int) -> IntArray:
    """Chutes in proportion to ``share`` by largest remainder, at least one per destination.

    With fewer chutes than destinations the largest shares get one chute each: a fixed plan
    cannot serve everyone, which is exactly where it breaks.
    """
    d = share.shape[0]
    order = np.argsort(-share, kind="stable")
    counts = np.zeros(d, dtype=np.int64)
    if chutes < d:
        counts[order[:chutes]] = 1
        return counts
    counts[:] = 1
    spare = chutes - d
    ideal = share / share.sum() * chutes - 1.0
    extra = np.floor(np.clip(ideal, 0.0, None)).astype(np.int64)
    while extra.sum() > spare:
        extra[np.argmax(extra)] -= 1
    remainder = ideal - extra
    for index in np.argsort(-remainder, kind="stable")[: spare - int(extra.sum())]:
        extra[index] += 1
    planned: IntArray = counts + extra
    return planned


def target_values(targets: FloatArray, levels: int) -> FloatArray:
    """Concave values ``-(k - t_d)^2``: the projection rounds the targets to a feasible plan."""
    k = np.arange(levels, dtype=np.float64)
    return -((k[None, :] - targets[:, None]) ** 2)


def recirculation_values(
    load: FloatArray,
    held: IntArray,
    physics: SitePhysics,
    tick_arrivals: FloatArray | None = None,
) -> FloatArray:
    """Negative expected recirculations of each destination for each chute count.

    A stochastic model of the twin's physics over one interval. Arrivals in each tick are
    Poisson with the interval's mean rate; each chute ejects at most ``rate * tick`` packages
    a tick and is unavailable part of the time: while its container is swapped (a fraction
    ``fills * swap / T`` shared by the destination's chutes) and, for a chute the destination
    does not hold yet, for ``move_seconds`` while it is closed out and relabelled. The number
    of open chutes is binomial; the recirculations of a tick are the expected overflow
    ``E[(X - open * rate * tick)^+]``. Zero chutes recirculate every arrival.

    With ``tick_arrivals`` ([D, ticks], known only to the lookahead reference) the overflow
    is taken over the true per-tick arrivals instead of the Poisson model.
    """
    levels = physics.max_chutes_per_destination + 1
    period = physics.interval_seconds
    ticks = max(1, round(period / physics.tick_seconds))
    per_tick_capacity = physics.chute_packages_per_second * physics.tick_seconds
    lam = np.maximum(load, 0.0) / ticks  # [D] mean arrivals per tick
    x_max = int(np.ceil(lam.max() + 8.0 * np.sqrt(lam.max() + 1.0))) + 2
    x = np.arange(x_max + 1, dtype=np.float64)
    log_pmf = (
        x[None, :] * np.log(np.maximum(lam, 1e-12))[:, None]
        - lam[:, None]
        - _log_factorial(x_max)[None, :]
    )
    pmf = np.exp(log_pmf)  # [D, X]
    # overflow[d, j] = E[(X - j * capacity)^+] for j open chutes
    j = np.arange(levels, dtype=np.float64)
    excess = np.maximum(x[None, :] - j[:, None] * per_tick_capacity, 0.0)  # [J, X]
    overflow = pmf @ excess.T  # [D, J]
    if tick_arrivals is not None:
        per_tick = tick_arrivals + (load - tick_arrivals.sum(axis=1))[:, None] / ticks
        overflow = np.maximum(
            per_tick[:, None, :] - j[None, :, None] * per_tick_capacity, 0.0
        ).mean(axis=2)

    k = np.arange(levels)
    busy = lam * ticks / physics.container_capacity * physics.swap_seconds / period  # [D]
    move_closed = min(1.0, physics.move_seconds / period)
    recirc = np.empty((load.shape[0], levels), dtype=np.float64)
    recirc[:, 0] = lam * ticks
    for level in k[1:]:
        kept = np.minimum(level, held)
        moved = level - kept
        # average availability of the level's chutes: swaps shared by all, moves on new ones
        swap_share = np.minimum(1.0, busy / level)
        avail = (1.0 - swap_share) * (kept + moved * (1.0 - move_closed)) / level
        weights = _binomial_pmf(level, avail)  # [D, level+1]
        recirc[:, level] = ticks * (weights * overflow[:, : level + 1]).sum(axis=1)
    return -recirc


def _log_factorial(n: int) -> FloatArray:
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))])


def _binomial_pmf(n: int, p: FloatArray) -> FloatArray:
    """[D, n+1] P(j of n chutes open) for each destination's open probability ``p``."""
    j = np.arange(n + 1, dtype=np.float64)
    log_choose = _log_factorial(n)[n] - _log_factorial(n)[: n + 1] - _log_factorial(n)[n::-1]
    p = np.clip(p, 1e-12, 1.0 - 1e-12)[:, None]
    pmf: FloatArray = np.exp(
        log_choose[None, :] + j[None, :] * np.log(p) + (n - j)[None, :] * np.log1p(-p)
    )
    return pmf


class StaticPolicy:
    """The traditional plan: one allocation per day from expected shares, held all day."""

    name = "static"
    version = "1"

    def __init__(self, physics: SitePhysics) -> None:
        self._physics = physics
        self._targets: FloatArray | None = None

    def start_day(self, plan: DayPlan) -> None:
        day_share = plan.expected_share.mean(axis=0)
        counts = static_plan_counts(day_share, self._physics.eject_chutes)
        self._targets = counts.astype(np.float64)

    def values(self, state: SiteState, observations: ObservationBatch) -> FloatArray:
        if self._targets is None:
            raise RuntimeError("start_day must be called before values")
        return target_values(self._targets, self._physics.max_chutes_per_destination + 1)


class ProportionalPolicy:
    """Chute targets in proportion to the last interval's arrivals plus the backlog."""

    name = "proportional"
    version = "1"

    def __init__(self, physics: SitePhysics) -> None:
        self._physics = physics

    def start_day(self, plan: DayPlan) -> None:
        self._first_share = plan.expected_share[0]

    def values(self, state: SiteState, observations: ObservationBatch) -> FloatArray:
        load = (state.arrivals[0] + state.backlog).astype(np.float64)
        if load.sum() <= 0:
            # Before the first arrivals the plan's shares are the only information.
            load = self._first_share.astype(np.float64)
        budget = int(state.chute_available.sum())
        targets = budget * load / load.sum()
        return target_values(targets, self._physics.max_chutes_per_destination + 1)


LOOKAHEAD_WEIGHTS = (1.0, 0.6, 0.3)
"""Weights of the next intervals in the lookahead's value: chutes picked now are largely
still held then, and a wave that starts next interval needs its chutes moved now."""


class LookaheadPolicy:
    """Evaluation-only upper reference: values from the next interval's true arrivals."""

    name = "lookahead"
    version = "1"

    def __init__(self, physics: SitePhysics) -> None:
        self._physics = physics
        self._arrivals: IntArray | None = None

    def start_day(self, plan: DayPlan) -> None:
        if plan.true_arrivals is None or plan.true_tick_arrivals is None:
            raise ValueError("lookahead needs the day's true arrivals (evaluation only)")
        self._arrivals = plan.true_arrivals
        self._ticks = plan.true_tick_arrivals

    def values(self, state: SiteState, observations: ObservationBatch) -> FloatArray:
        if self._arrivals is None:
            raise RuntimeError("start_day must be called before values")
        k = state.interval_index
        n_intervals, n_dest = self._arrivals.shape
        per_interval = self._ticks.shape[0] // n_intervals
        held = state.held_available()
        values = np.zeros((n_dest, self._physics.max_chutes_per_destination + 1))
        # The chutes chosen now are mostly still held over the next intervals: value them
        # over a short horizon, paying the move downtime only in the first interval.
        for h, weight in enumerate(LOOKAHEAD_WEIGHTS):
            if k + h >= n_intervals:
                break
            load = self._arrivals[k + h].astype(np.float64) + (state.backlog if h == 0 else 0)
            ticks = self._ticks[(k + h) * per_interval : (k + h + 1) * per_interval].T
            assumed_held = held if h == 0 else np.full(n_dest, 10**6)
            values += weight * recirculation_values(
                load, assumed_held, self._physics, ticks.astype(np.float64)
            )
        return values


class OnnxPolicy:
    """A learned policy exported to ONNX: ``[D, F]`` float32 in, ``[D, K+1]`` values out."""

    name: str
    version: str

    def __init__(
        self,
        model: Path | bytes,
        levels: int,
        *,
        name: str | None = None,
        version: str | None = None,
    ) -> None:
        """``model``: an ONNX file, or its bytes (a store artifact whose hash was checked: the
        session is made from exactly those bytes, never from a file that could change after
        the check). ``name``/``version`` override the ONNX metadata's ``policy_name`` and
        ``policy_version``."""
        import onnxruntime as ort  # imported here: only ONNX policies need the runtime loaded

        label = str(model) if isinstance(model, Path) else "policy artifact"
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model) if isinstance(model, Path) else model,
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"{label}: expected one input, found {len(inputs)}")
        self._input = inputs[0].name
        meta = self._session.get_modelmeta().custom_metadata_map
        self.features = policy_features(meta, inputs[0].shape[-1], label)
        self._columns = feature_columns(self.features)
        stem = model.stem if isinstance(model, Path) else "onnx"
        self.name = name or meta.get("policy_name", stem)
        self.version = version or meta.get("policy_version", "0")
        out_width = self._session.get_outputs()[0].shape[-1]
        if isinstance(out_width, int) and out_width != levels:
            raise ValueError(f"{label}: output width {out_width} != {levels} chute counts")

    def start_day(self, plan: DayPlan) -> None:
        return None

    def values(self, state: SiteState, observations: ObservationBatch) -> FloatArray:
        """The network's output as float64; shape and NaN are checked by the engine
        (``decision.values.check_values``), the same as for every other policy."""
        x = np.ascontiguousarray(observations[:, self._columns])
        (out,) = self._session.run(None, {self._input: x})
        return np.asarray(out, dtype=np.float64)


BUILTIN_POLICIES = ("static", "proportional", "lookahead")


def make_policy(name_or_path: str, physics: SitePhysics) -> Policy:
    """A built-in policy by name, or an ONNX policy by file path."""
    if name_or_path == "static":
        return StaticPolicy(physics)
    if name_or_path == "proportional":
        return ProportionalPolicy(physics)
    if name_or_path == "lookahead":
        return LookaheadPolicy(physics)
    path = Path(name_or_path)
    if path.suffix == ".onnx" and path.is_file():
        return OnnxPolicy(path, physics.max_chutes_per_destination + 1)
    raise ValueError(
        f"unknown policy {name_or_path!r}: use {', '.join(BUILTIN_POLICIES)} or a .onnx file"
    )
