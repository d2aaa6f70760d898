"""A day on the twin driven by the decision engine: the in-process twin of the live loop.

Per interval: the twin reports its ``SiteState``, the engine decides, the twin runs the
interval under that allocation. Replay through Kafka runs the same loop with the broker in
between and must give identical allocations and KPIs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np
import numpy.typing as npt

from contracts.events import Envelope
from decision.engine import Decision, DecisionEngine
from floor.daytypes import GroupsError, default_groups
from floor.forecast import honest_plan
from floor.plan import DayPlan
from twin.day import DayDemand
from twin.kpis import DayKPIs
from twin.sim import SortationTwin

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class DayRun:
    """A simulated day: its KPIs and every decision made."""

    kpis: DayKPIs
    decisions: tuple[Decision, ...]

    def counts_over_day(self) -> IntArray:
        """[n_intervals, D] chutes per destination per interval."""
        return np.stack([decision.counts for decision in self.decisions])


def day_plan(demand: DayDemand, day: str | None = None, *, oracle: bool = False) -> DayPlan:
    """The plan the twin's day gives a policy; ``day`` names the operating day in decision ids
    (default: the date; a replay through Kafka uses the day start record's key instead).

    By default the honest plan (``floor/forecast.py``): the calendar forecast over the site's
    groups, updated online by the engine, the same plan the worker builds from
    ``day_started``. ``oracle=True``: the demand's own ``expected_share`` (a group day's true
    group, a history day's hindsight nearest group), only for a labelled reference row. A
    scenario without day-type groups has no forecast and gets the demand's plan too.
    The true arrivals are only read by the lookahead reference policy.
    """
    key = day if day is not None else demand.day_start.date().isoformat()
    arrivals, ticks = demand.interval_arrivals(), demand.arrivals
    if not oracle:
        try:
            groups = default_groups(demand.scenario)
        except GroupsError:
            groups = None
        if groups is not None:
            plan = honest_plan(groups, demand.day_start.date(), key)
            return replace(plan, true_arrivals=arrivals, true_tick_arrivals=ticks)
    return DayPlan(
        expected_share=demand.expected_share,
        true_arrivals=arrivals,
        true_tick_arrivals=ticks,
        day=key,
    )


def run_day(
    engine: DecisionEngine,
    demand: DayDemand,
    seed: int,
    emit: Callable[[Envelope], None] | None = None,
    on_interval: Callable[[int], None] | None = None,
    day: str | None = None,
    *,
    oracle_plan: bool = False,
    intervals: int | None = None,
) -> DayRun:
    """Simulate ``demand`` with allocations from ``engine``; deterministic in ``seed``. The
    policy gets the honest plan unless ``oracle_plan`` (:func:`day_plan`). ``intervals``: only
    the first that many (a replay truncated the same way gives the same KPIs)."""
    scenario = demand.scenario
    twin = SortationTwin(scenario, demand, seed=seed, emit=emit)
    engine.start_day(day_plan(demand, day, oracle=oracle_plan))
    decisions = []
    interval = timedelta(minutes=scenario.interval_minutes)
    last = scenario.n_intervals if intervals is None else intervals
    while not twin.done and twin.interval_index < last:
        state = twin.site_state()
        start = demand.day_start + interval * state.interval_index
        decision = engine.decide(state, interval_start=start, now=start)
        if emit is not None:
            emit(decision.event)
        twin.run_interval(decision.owner)
        decisions.append(decision)
        if on_interval is not None:
            on_interval(state.interval_index)
    return DayRun(twin.kpis(), tuple(decisions))
