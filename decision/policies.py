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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from decision.features import N_FEATURES, ObservationBatch
from decision.state import SiteState

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SitePhysics:
    """The few floor constants a value model needs (from the scenario)."""

    eject_chutes: int
    max_chutes_per_destination: int
    interval_seconds: float
    chute_packages_per_second: float
    container_capacity: int
    swap_seconds: float
    move_seconds: float


@dataclass(frozen=True)
class DayPlan:
    """What is known about a day before it starts (and, for evaluation, what is not)."""

    expected_share: FloatArray
    """[n_intervals, D] the day type's expected share of each interval's inductions."""
    true_arrivals: IntArray | None = field(default=None, repr=False)
    """[n_intervals, D] the day's real first inductions; only the lookahead reference reads it."""


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
    return counts + extra


def target_values(targets: FloatArray, levels: int) -> FloatArray:
    """Concave values ``-(k - t_d)^2``: the projection rounds the targets to a feasible plan."""
    k = np.arange(levels, dtype=np.float64)
    return -((k[None, :] - targets[:, None]) ** 2)


def recirculation_values(load: FloatArray, held: IntArray, physics: SitePhysics) -> FloatArray:
    """Negative expected recirculations of each destination for each chute count.

    A fluid model of the twin's physics over one interval. ``k`` chutes eject at most their
    rate times the time they are open; a chute the destination does not hold yet is closed
    for ``move_seconds`` first, so taking chutes from others has a price. A destination's
    arrivals recirculate while all its chutes are swapping at once (each is busy swapping a
    fraction ``fills * swap / T`` of the interval, independently). Zero chutes recirculate
    every arrival. A small bonus per chute-second of slack breaks ties toward spare
    capacity, which absorbs the arrival noise the fluid model ignores.
    """
    levels = physics.max_chutes_per_destination + 1
    k = np.arange(levels, dtype=np.float64)[None, :]
    lam = load[:, None]
    period = physics.interval_seconds
    kept = np.minimum(k, held[:, None].astype(np.float64))
    moved = k - kept
    open_share = max(0.0, 1.0 - physics.move_seconds / period)
    chute_time = kept + moved * open_share  # chute-intervals of open time
    capacity = chute_time * physics.chute_packages_per_second * period
    busy = lam / physics.container_capacity * physics.swap_seconds / period
    per_chute_busy = np.minimum(1.0, busy / np.maximum(chute_time, 1e-9))
    all_closed = np.where(k > 0, per_chute_busy ** np.maximum(chute_time, 1.0), 1.0)
    ejected = np.minimum(lam, capacity) * (1.0 - all_closed)
    recirc = lam - ejected
    slack = 1e-3 * np.log1p(np.maximum(capacity - lam, 0.0))
    return -recirc + slack


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


class LookaheadPolicy:
    """Evaluation-only upper reference: values from the next interval's true arrivals."""

    name = "lookahead"
    version = "1"

    def __init__(self, physics: SitePhysics) -> None:
        self._physics = physics
        self._arrivals: IntArray | None = None

    def start_day(self, plan: DayPlan) -> None:
        if plan.true_arrivals is None:
            raise ValueError("lookahead needs the day's true arrivals (evaluation only)")
        self._arrivals = plan.true_arrivals

    def values(self, state: SiteState, observations: ObservationBatch) -> FloatArray:
        if self._arrivals is None:
            raise RuntimeError("start_day must be called before values")
        load = (self._arrivals[state.interval_index] + state.backlog).astype(np.float64)
        return recirculation_values(load, state.held_available(), self._physics)


class OnnxPolicy:
    """A learned policy exported to ONNX: ``[D, F]`` float32 in, ``[D, K+1]`` values out."""

    name: str
    version: str

    def __init__(self, path: Path, levels: int) -> None:
        import onnxruntime as ort  # imported here: only ONNX policies need the runtime loaded

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"{path}: expected one input, found {len(inputs)}")
        self._input = inputs[0].name
        width = inputs[0].shape[-1]
        if isinstance(width, int) and width != N_FEATURES:
            raise ValueError(f"{path}: input width {width} != {N_FEATURES} features")
        meta = self._session.get_modelmeta().custom_metadata_map
        self.name = meta.get("policy_name", path.stem)
        self.version = meta.get("policy_version", "0")
        self._levels = levels

    def start_day(self, plan: DayPlan) -> None:
        return None

    def values(self, state: SiteState, observations: ObservationBatch) -> FloatArray:
        (out,) = self._session.run(None, {self._input: observations})
        values = np.asarray(out, dtype=np.float64)
        if values.shape != (observations.shape[0], self._levels):
            raise ValueError(f"policy output shape {values.shape} != {(observations.shape[0], self._levels)}")
        if not np.isfinite(values).all():
            raise ValueError("policy output contains NaN or infinity")
        return values


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
