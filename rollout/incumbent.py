"""The incumbent's counterfactual day, stepped forward interval by interval as the floor closes
them: what the canary gate compares the candidate with.

``rollout/shadow.py`` re-runs whole days for a report; the gate needs one policy (the
incumbent) and one more interval at a time, within the interval. So each of the
:data:`~rollout.shadow.SHADOW_SEEDS` fill seeds keeps its own twin and engine alive
(``SortationTwin.observe_more`` hands a twin the arrivals and outages reported since), and a
check costs one decision and one simulated interval per seed (a few milliseconds on the large
site) instead of a whole day per policy of the day. The runs are exactly
:func:`rollout.shadow.counterfactual_mean`'s on the same events (``tests/rollout``): the same
seeds, plan, arrivals and outages. When an event about an interval already simulated arrives
late, the past changed: the twins are re-run from the day's start, which is exact too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from contracts.events import ChuteStateChanged, Envelope, PackageInducted
from decision.engine import DecisionEngine
from floor.plan import DayPlan
from floor.scenario import Scenario
from floor.seeds import Stream, derive
from twin.counterfactual import ObservedDay
from twin.day import DayDemand
from twin.sim import Outage, SortationTwin

IntArray = npt.NDArray[np.int64]
_MICROSECOND = timedelta(microseconds=1)


@dataclass
class ObservedSoFar:
    """A site-day's first inductions and chute outages as their events arrive, by the rules of
    :meth:`twin.counterfactual.ObservedDay.from_events` (one first induction per package and
    event id, unknown destinations and times outside the day dropped)."""

    scenario: Scenario
    day_start: datetime
    arrivals: IntArray = field(init=False)
    """[n_ticks, D] first inductions per tick."""
    earliest_new_tick: int = field(init=False, default=2**62)
    """Earliest tick an induction was added at since :meth:`taken`."""
    _chute_events: list[Envelope] = field(init=False, default_factory=list)
    _outages: tuple[Outage, ...] | None = field(init=False, default=())
    _seen_events: set[str] = field(init=False, default_factory=set)
    _seen_packages: set[str] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        s = self.scenario
        self.arrivals = np.zeros((s.n_ticks, s.n_destinations), dtype=np.int64)
        self._tick_us = round(s.tick_seconds * 1_000_000)
        self._day_us = s.n_ticks * self._tick_us

    def add(self, event: Envelope) -> None:
        """Take one floor event (anything but a first induction or an outage is skipped)."""
        if isinstance(event, PackageInducted):
            if event.attempt != 1 or event.event_id in self._seen_events:
                return
            self._seen_events.add(event.event_id)
            offset_us = (event.event_time - self.day_start) // _MICROSECOND
            index = self.scenario.destination_index.get(event.destination)
            if event.site_id != self.scenario.site_id or not 0 <= offset_us < self._day_us:
                return
            if index is None or event.package_id in self._seen_packages:
                return
            self._seen_packages.add(event.package_id)
            # ObservedDay rounds seconds back to whole microseconds: offset_us itself
            tick = offset_us // self._tick_us
            self.arrivals[tick, index] += 1
            self.earliest_new_tick = min(self.earliest_new_tick, tick)
        elif isinstance(event, ChuteStateChanged) and event.state in (
            "out_of_service",
            "back_in_service",
        ):
            self._chute_events.append(event)
            self._outages = None

    def outages(self, plan: DayPlan) -> tuple[Outage, ...]:
        """The outage schedule so far (an outage still open has no end)."""
        if self._outages is None:
            observed = ObservedDay.from_events(
                self.scenario, self.day_start, plan, self._chute_events, -1
            )
            self._outages = observed.outages
        return self._outages

    def taken(self) -> None:
        """The twins have seen every induction added so far."""
        self.earliest_new_tick = 2**62


class IncumbentTwin:
    """One policy's counterfactual day over several fill seeds, advanced one interval at a
    time; per-interval counts are summed over the seeds (rates from the sums are the mean
    rates, as in ``compare``)."""

    def __init__(
        self,
        scenario: Scenario,
        plan: DayPlan,
        engines: list[DecisionEngine],
        day_ordinal: int,
    ) -> None:
        """``engines``: one engine of the policy per seed (each keeps its own day state)."""
        self.scenario = scenario
        self.plan = plan
        self.engines = engines
        self.seeds = [derive(Stream.SHADOW_TWIN, day_ordinal, k) for k in range(len(engines))]
        k = scenario.n_intervals
        self.first_inductions = np.zeros(k, dtype=np.int64)
        self.recirculated = np.zeros(k, dtype=np.int64)
        self.simulated = 0
        """Intervals simulated: ``0..simulated-1``."""
        self.restarts = 0
        """Times a late event about the past made the twins re-run from the day's start."""
        self._twins: list[SortationTwin] = []
        self._outages: tuple[Outage, ...] | None = None

    def _demand(self, observed: ObservedSoFar, through: int) -> DayDemand:
        s = self.scenario
        arrivals = np.zeros_like(observed.arrivals)
        end = (through + 1) * s.ticks_per_interval
        arrivals[:end] = observed.arrivals[:end]
        return DayDemand(
            scenario=s,
            arrivals=arrivals,
            expected_share=np.asarray(self.plan.expected_share, dtype=np.float64),
            day_start=observed.day_start,
            label=f"observed {s.site_id} {observed.day_start.isoformat()}",
        )

    def _restart(self, observed: ObservedSoFar, through: int) -> None:
        demand = self._demand(observed, through)
        outages = observed.outages(self.plan)
        self._twins = []
        for engine, seed in zip(self.engines, self.seeds, strict=True):
            self._twins.append(SortationTwin(self.scenario, demand, seed=seed, outages=outages))
            engine.start_day(self.plan)
        self._outages = outages
        self.first_inductions[:] = 0
        self.recirculated[:] = 0
        self.restarts += self.simulated > 0
        self.simulated = 0

    def advance(self, observed: ObservedSoFar, through: int) -> None:
        """Simulate every interval up to ``through`` (closed on the floor) not simulated yet."""
        if through < self.simulated:
            return
        s = self.scenario
        outages = observed.outages(self.plan)
        past_changed = observed.earliest_new_tick < self.simulated * s.ticks_per_interval
        if not self._twins or past_changed:
            self._restart(observed, through)
        else:
            demand = self._demand(observed, through)
            try:
                for twin in self._twins:
                    twin.observe_more(demand, outages)
            except ValueError:  # an outage of the past changed: exact only from the start
                self._restart(observed, through)
        observed.taken()
        interval = timedelta(minutes=s.interval_minutes)
        for k in range(self.simulated, through + 1):
            start = observed.day_start + interval * k
            for twin, engine in zip(self._twins, self.engines, strict=True):
                decision = engine.decide(twin.site_state(), interval_start=start, now=start)
                result = twin.run_interval(decision.owner)
                self.first_inductions[k] += int(result.first_inductions.sum())
                self.recirculated[k] += int(result.recirculated.sum())
        self.simulated = through + 1


__all__ = ["IncumbentTwin", "ObservedSoFar"]
