"""The shadow twin: a real day re-run on the twin under other policies, same arrivals.

A policy's KPIs on a sampled day say little about the day a floor actually had; comparing the
serving policy's *live* KPIs with a candidate's *simulated* ones mixes the policy with the
twin's model error. Here every policy, the one that served included, runs on the twin on the
same observed day: the first inductions the floor reported (per package, time and
destination) and the chute outages it reported, so the comparison is apples to apples.

Each policy runs its own closed loop (:func:`twin.closed_loop.run_day` semantics): at interval
``k`` it decides on *its* twin's ``site_state()``, which depends only on intervals before ``k``
of its own trajectory, never on what the floor or another policy did later (causal). All
policies run with the same seed, and with external outages the twin draws nothing random but
the initial container fills, so every run sees the same fills, arrivals and outages (common
random numbers): KPI differences are the policies' doing, not noise.

:meth:`ObservedDay.from_events` builds the observed day from contract events; on a day the twin
itself emitted, re-running the policy that made it reproduces its KPIs exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from contracts.events import ChuteStateChanged, Envelope, PackageInducted, SolverStatus
from decision.engine import DecisionEngine
from floor.plan import DayPlan
from floor.scenario import Scenario
from twin.day import DayDemand
from twin.kpis import DayKPIs
from twin.sim import Outage, SortationTwin

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_MICROSECOND = timedelta(microseconds=1)


def _tick_microseconds(scenario: Scenario) -> int:
    """One tick in whole microseconds (event times have microsecond resolution)."""
    return round(scenario.tick_seconds * 1_000_000)


@dataclass(frozen=True, eq=False)
class ObservedDay:
    """What a real floor reported about one day, as the twin needs it.

    Package times are kept in seconds (exact multiples of a microsecond when built from
    events); ticks are derived in integer microseconds so a package emitted inside tick ``t``
    maps to tick ``t`` whatever the float rounding of its time.
    """

    scenario: Scenario
    day_start: datetime
    """Aware start of the operating day (tick 0)."""
    plan: DayPlan
    """What each policy is told before the day (``start_day``), handed over as is."""
    induction_seconds: FloatArray
    """[N] first induction of each package, seconds since ``day_start``."""
    induction_destination: IntArray
    """[N] destination index of each package."""
    outages: tuple[Outage, ...]
    """Chute outages in ticks; ``end_tick=None`` = not back in service (yet)."""
    closed_through: int
    """Last interval the floor has closed (-1: none); later arrivals are not simulated."""
    ignored: int = 0
    """Relevant events dropped by :meth:`from_events`: unknown site, destination or chute, or
    a time outside the day (or a ``back_in_service`` with no outage open)."""
    duplicates: int = 0
    """Redelivered events (same ``event_id``) and repeated first inductions of a package."""
    _ticks: IntArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        s = self.scenario
        if self.day_start.utcoffset() is None:
            raise ValueError("day_start must be timezone-aware")
        seconds = np.asarray(self.induction_seconds, dtype=np.float64)
        destination = np.asarray(self.induction_destination, dtype=np.int64)
        if seconds.shape != destination.shape or seconds.ndim != 1:
            raise ValueError("induction_seconds and induction_destination must be [N] arrays")
        if destination.size and (destination.min() < 0 or destination.max() >= s.n_destinations):
            raise ValueError("induction_destination holds an unknown destination index")
        if not -1 <= self.closed_through < s.n_intervals:
            raise ValueError(f"closed_through must be in -1..{s.n_intervals - 1}")
        for outage in self.outages:
            if outage.chute >= s.eject_chutes:
                raise ValueError(f"outage of unknown chute index {outage.chute}")
        ticks = np.rint(seconds * 1_000_000).astype(np.int64) // _tick_microseconds(s)
        if ticks.size and (ticks.min() < 0 or ticks.max() >= s.n_ticks):
            raise ValueError("a first induction lies outside the day")
        object.__setattr__(self, "induction_seconds", seconds)
        object.__setattr__(self, "induction_destination", destination)
        object.__setattr__(self, "outages", tuple(self.outages))
        object.__setattr__(self, "_ticks", ticks)

    @property
    def n_intervals(self) -> int:
        """Intervals the counterfactual simulates: ``0..closed_through``."""
        return self.closed_through + 1

    def arrival_ticks(self) -> IntArray:
        """[N] tick of each first induction."""
        return self._ticks.copy()

    def demand(self) -> DayDemand:
        """The observed first inductions per tick; ticks after the last closed interval are
        zero (the floor has not reported them yet)."""
        s = self.scenario
        n_d = s.n_destinations
        keep = self._ticks < self.n_intervals * s.ticks_per_interval
        cells = self._ticks[keep] * n_d + self.induction_destination[keep]
        arrivals = np.bincount(cells, minlength=s.n_ticks * n_d).reshape(s.n_ticks, n_d)
        return DayDemand(
            scenario=s,
            arrivals=arrivals.astype(np.int64),
            expected_share=np.asarray(self.plan.expected_share, dtype=np.float64),
            day_start=self.day_start,
            label=f"observed {s.site_id} {self.day_start.isoformat()}",
        )

    @classmethod
    def from_events(
        cls,
        scenario: Scenario,
        day_start: datetime,
        plan: DayPlan,
        events: Iterable[Envelope],
        closed_through: int,
    ) -> ObservedDay:
        """The observed day from contract events, in any order.

        Reads ``package_inducted`` with ``attempt == 1`` (arrivals) and ``chute_state_changed``
        ``out_of_service``/``back_in_service`` (outages); every other event is skipped. An
        outage starts at the tick its event falls in and ends at the first tick boundary at
        or after ``back_in_service`` (twin events lie on tick boundaries, so both are exact
        for them). An ``out_of_service`` for a chute already out ends that outage and starts
        a new one (the twin emits no ``back_in_service`` when a chute fails again the very
        tick it comes back).
        """
        s = scenario
        tick_us = _tick_microseconds(s)
        day_us = s.n_ticks * tick_us
        chute_index = {chute: index for index, chute in enumerate(s.chute_ids)}
        destination_index = s.destination_index
        seen_events: set[str] = set()
        seen_packages: set[str] = set()
        seconds: list[float] = []
        destinations: list[int] = []
        chute_events: list[tuple[int, int, bool]] = []  # (microseconds, chute, out)
        ignored = duplicates = 0
        for event in events:
            if isinstance(event, PackageInducted):
                if event.attempt != 1:
                    continue
            elif isinstance(event, ChuteStateChanged):
                if event.state not in ("out_of_service", "back_in_service"):
                    continue
            else:
                continue
            if event.event_id in seen_events:
                duplicates += 1
                continue
            seen_events.add(event.event_id)
            offset_us = (event.event_time - day_start) // _MICROSECOND
            if event.site_id != s.site_id or not 0 <= offset_us < day_us:
                ignored += 1
                continue
            if isinstance(event, PackageInducted):
                index = destination_index.get(event.destination)
                if index is None:
                    ignored += 1
                elif event.package_id in seen_packages:
                    duplicates += 1
                else:
                    seen_packages.add(event.package_id)
                    seconds.append(offset_us / 1_000_000)
                    destinations.append(index)
            else:
                chute = chute_index.get(event.chute_id)
                if chute is None:
                    ignored += 1
                else:
                    chute_events.append((offset_us, chute, event.state == "out_of_service"))
        outages, unmatched = _outages(chute_events, tick_us)
        return cls(
            scenario=s,
            day_start=day_start,
            plan=plan,
            induction_seconds=np.asarray(seconds, dtype=np.float64),
            induction_destination=np.asarray(destinations, dtype=np.int64),
            outages=outages,
            closed_through=closed_through,
            ignored=ignored + unmatched,
            duplicates=duplicates,
        )


def _outages(
    chute_events: list[tuple[int, int, bool]], tick_us: int
) -> tuple[tuple[Outage, ...], int]:
    """Outages from (microseconds, chute, out) events; also the unmatched ``back`` count.

    Events are ordered by time, and at equal times ``back`` before ``out``: the twin emits a
    repair due at an interval boundary before a new failure at that tick.
    """
    chute_events.sort(key=lambda e: (e[0], e[2]))
    open_since: dict[int, int] = {}
    outages: list[Outage] = []
    unmatched = 0
    for offset_us, chute, out in chute_events:
        if out:
            start = offset_us // tick_us
            previous = open_since.pop(chute, None)
            if previous is not None:
                outages.append(Outage(chute, previous, max(start, previous + 1)))
            open_since[chute] = start
        else:
            start_tick = open_since.pop(chute, None)
            if start_tick is None:
                unmatched += 1
                continue
            end = -(-offset_us // tick_us)  # ceil: back from the next tick boundary
            outages.append(Outage(chute, start_tick, max(end, start_tick + 1)))
    outages.extend(Outage(chute, start) for chute, start in open_since.items())
    outages.sort(key=lambda o: (o.start_tick, o.chute))
    return tuple(outages), unmatched


@dataclass(frozen=True, eq=False)
class CounterfactualRun:
    """One policy's run over the observed day; per-interval arrays have ``K`` rows, one per
    simulated interval (``0..closed_through``)."""

    label: str
    policy_name: str
    policy_version: str
    kpis: DayKPIs
    """KPIs of the simulated part of the day (the twin's ``kpis()``)."""
    counts: IntArray
    """[K, D] chutes per destination decided for each interval."""
    first_inductions: IntArray
    """[K] first inductions (the same for every policy: the observed arrivals)."""
    recirculated: IntArray
    """[K] recirculation events."""
    first_recirculations: IntArray
    """[K] packages recirculated for the first time."""
    sorted: IntArray
    """[K] packages sorted."""
    moves: IntArray
    """[K] chute moves."""
    solver_status: tuple[SolverStatus, ...]
    """[K] how each allocation was reached (fallbacks show a struggling policy)."""


def run_counterfactual(
    observed: ObservedDay, engines: Mapping[str, DecisionEngine], seed: int
) -> dict[str, CounterfactualRun]:
    """Re-run the observed day once per engine, each on its own closed-loop trajectory.

    Every label gets a fresh twin with the observed arrivals and outages and the same
    ``seed`` (common random numbers); its engine starts the day with ``observed.plan`` and
    decides each interval ``0..closed_through`` on its own twin's state, exactly like
    :func:`twin.closed_loop.run_day`.
    """
    s = observed.scenario
    demand = observed.demand()
    interval = timedelta(minutes=s.interval_minutes)
    n_k, n_d = observed.n_intervals, s.n_destinations
    runs: dict[str, CounterfactualRun] = {}
    for label, engine in engines.items():
        layout = engine.layout
        if layout.site_id != s.site_id or tuple(layout.chute_ids) != s.chute_ids:
            raise ValueError(f"engine {label!r} decides for another site than {s.site_id}")
        twin = SortationTwin(s, demand, seed=seed, outages=observed.outages)
        engine.start_day(observed.plan)
        counts = np.zeros((n_k, n_d), dtype=np.int64)
        totals = np.zeros((5, n_k), dtype=np.int64)
        status: list[SolverStatus] = []
        for k in range(n_k):
            state = twin.site_state()
            start = observed.day_start + interval * k
            decision = engine.decide(state, interval_start=start, now=start)
            result = twin.run_interval(decision.owner)
            counts[k] = decision.counts
            totals[:, k] = (
                result.first_inductions.sum(),
                result.recirculated.sum(),
                result.first_recirculations.sum(),
                result.sorted.sum(),
                result.chute_moves,
            )
            status.append(decision.event.solver_status)
        runs[label] = CounterfactualRun(
            label=label,
            policy_name=engine.policy.name,
            policy_version=engine.policy.version,
            kpis=twin.kpis(),
            counts=counts,
            first_inductions=totals[0],
            recirculated=totals[1],
            first_recirculations=totals[2],
            sorted=totals[3],
            moves=totals[4],
            solver_status=tuple(status),
        )
    return runs


__all__ = ["CounterfactualRun", "ObservedDay", "Outage", "run_counterfactual"]
