"""The canary gate as a state machine over the stream: records in, checks and verdicts out.

Where the gate lives, and why here. It runs in a watcher process (``chuteflow policy canary``
or ``policy gate``, ``rollout/watcher.py``), not in the worker: the check needs the incumbent's
counterfactual twin, and the worker never loads the simulator (``twin/`` and ``stream/`` are
peers; a worker stays small, restarts fast and decides on time whatever the gate costs). It
is incremental instead of re-reading the day: every record is decoded once into this state
(the day's floor counts, the incumbent twin's arrivals and outages, the served allocations),
the incumbent twin is stepped one interval per close (``rollout/incumbent.py``), and a close is
checked as soon as the interval's records are in, so the verdict (a route on the control
topic) is out within the interval. Nothing here does I/O: the watcher feeds records and
publishes what :meth:`GateState.ready` returns, and tests feed twin-emitted events directly.

Which records belong to a day: the day run a ``day_started`` opened (its ``day_key``), never a
date with a time margin. Allocations name it in their decision ids; a floor record belongs to
the site's day run whose ``day_started`` record it does not precede (Kafka timestamps), with
its event time inside that day; floor records of a day consumed before its ``day_started``
(Kafka orders only within one partition of one topic) wait in a buffer until it arrives.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from contracts.control import CanaryCheck, PolicyRef, PolicyRoute
from contracts.events import (
    AllocationDecided,
    DayStarted,
    Envelope,
    IntervalClosed,
    PackageInducted,
    PackageRecirculated,
)
from contracts.topics import ALLOCATIONS, CHUTE_STATE, INDUCTIONS, INTERVALS, SORTATION
from decision.build import build_engine
from floor.daytypes import default_groups
from floor.forecast import honest_plan
from floor.scenario import Scenario
from floor.site import load_site
from rollout.canary import GateCheck, GateVerdict, judge, promote_routes, rollback_route
from rollout.incumbent import IncumbentTwin, ObservedSoFar
from rollout.shadow import SHADOW_SEEDS, Fetch

IntArray = npt.NDArray[np.int64]
FLOOR_TOPIC_NAMES = (INDUCTIONS.name, SORTATION.name, CHUTE_STATE.name)
BUFFER_RECORDS = 200_000
"""Floor records kept while no day of their site is open (a day's first records may be read
before its ``day_started``); older ones are dropped first."""


@dataclass
class DayRun:
    """One site's open day run, as far as the gate needs it."""

    started: DayStarted
    timestamp_ms: int
    scenario: Scenario
    observed: ObservedSoFar = field(init=False)
    inducted: IntArray = field(init=False)
    """[K] the floor's first inductions per interval (by event time)."""
    recirculated: IntArray = field(init=False)
    """[K] the floor's recirculation events per interval."""
    received: Counter[str] = field(default_factory=Counter)
    """Site records of the day per floor topic."""
    declared: list[Counter[str]] = field(default_factory=list)
    """Cumulative ``events_in_interval`` per close, in interval order."""
    closes: dict[int, float] = field(default_factory=dict)
    """Interval -> monotonic time its close was read."""
    close_stamps: dict[int, int] = field(default_factory=dict)
    """Interval -> Kafka timestamp (ms) of its close record: when the worker wrote it."""
    allocations: dict[int, AllocationDecided] = field(default_factory=dict)
    checked_through: int = -1
    _seen: set[tuple[str, str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        k = self.scenario.n_intervals
        self.observed = ObservedSoFar(self.scenario, self.started.day_start)
        self.inducted = np.zeros(k, dtype=np.int64)
        self.recirculated = np.zeros(k, dtype=np.int64)

    @property
    def day_key(self) -> str:
        return self.started.day_key()

    @functools.cached_property
    def day_end(self) -> datetime:
        s = self.scenario
        return self.started.day_start + timedelta(minutes=s.interval_minutes) * s.n_intervals

    @property
    def complete(self) -> bool:
        return self.checked_through >= self.scenario.n_intervals - 1

    def floor_event(self, topic: str, event: Envelope) -> None:
        """A floor record of this day (counted as ``rollout.observe.floor_counts`` does)."""
        self.received[topic] += 1
        if not self.started.day_start <= event.event_time <= self.day_end:
            return
        self.observed.add(event)
        if not isinstance(event, PackageInducted | PackageRecirculated):
            return
        identity = (event.event_type, event.package_id, event.attempt)
        if identity in self._seen:
            return  # a redelivered copy
        self._seen.add(identity)
        s = self.scenario
        seconds = (event.event_time - self.started.day_start).total_seconds()
        index = min(int(seconds // (s.interval_minutes * 60.0)), s.n_intervals - 1)
        if isinstance(event, PackageInducted):
            self.inducted[index] += event.attempt == 1
        else:
            self.recirculated[index] += 1

    def close(self, event: IntervalClosed, now: float, timestamp_ms: int) -> None:
        k = event.interval_index
        if k in self.closes or not 0 <= k < self.scenario.n_intervals:
            return
        self.closes[k] = now
        self.close_stamps[k] = timestamp_ms
        while len(self.declared) <= k:
            self.declared.append(Counter())
        if event.events_in_interval is not None:
            for j in range(k, len(self.declared)):
                self.declared[j].update(event.events_in_interval)

    def ready(self, k: int, now: float, stall_s: float) -> bool:
        """Interval ``k`` is closed and its records are in (or waited for ``stall_s``)."""
        seen_at = self.closes.get(k)
        if seen_at is None:
            return False
        if now - seen_at >= stall_s:
            return True
        declared = self.declared[k] if k < len(self.declared) else Counter()
        counted = all(self.received[t] >= n for t, n in declared.items())
        return counted and k in self.allocations


@dataclass
class OpenCanary:
    """A site's canary as the gate follows it."""

    route: PolicyRoute
    day_key: str | None = None
    twin: IncumbentTwin | None = None
    first: int | None = None
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def revision(self) -> int:
        assert self.route.canary is not None
        return self.route.canary.started_revision


@dataclass(frozen=True)
class Verdict:
    """What the gate decided after a check: the record to publish and the routes to write."""

    check: CanaryCheck
    routes: list[PolicyRoute]
    verdict: GateVerdict
    close_timestamp_ms: int | None = None
    """Kafka timestamp of the checked interval's close record (latency from the worker's
    write, not only from this process's read)."""


@dataclass
class GateState:
    """Every watched site's day run, route and canary, fed record by record."""

    scenarios: Mapping[str, Scenario]
    fetch: Fetch
    seeds: int = SHADOW_SEEDS
    stall_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    routes: dict[str, PolicyRoute] = field(default_factory=dict)
    days: dict[str, DayRun] = field(default_factory=dict)
    canaries: dict[str, OpenCanary] = field(default_factory=dict)
    ended: dict[str, GateVerdict] = field(default_factory=dict)
    """Verdicts of canaries that ended while watched (by the gate or by someone else)."""
    replaying: bool = False
    """Set while a watcher reads the routes written before it started: a canary that ended
    then was not watched by it, so it makes no ``ended`` verdict (each ``policy gate`` used to
    print, and write to the canary topic again, every canary the control topic still held)."""
    buffers: dict[str, deque[tuple[str, int, Envelope | None]]] = field(default_factory=dict)
    prepared: dict[str, PolicyRef] = field(default_factory=dict)
    """Per site, the incumbent a canary is about to be compared with (:meth:`prepare`)."""
    twins: dict[str, tuple[str, str, IncumbentTwin]] = field(default_factory=dict)
    """Per site: (incumbent key, day key, its twin), stepped as the day's intervals close
    whether or not a canary is open yet. One per site: the twin consumes the day's
    ``ObservedSoFar`` news (``taken``), which two twins could not share."""

    def prepare(self, site: str, incumbent: PolicyRef) -> None:
        """Keep the incumbent's twin of the site's day current from now on, before its canary
        opens: building it and replaying the day so far (seconds on a large site mid-day) then
        happens before the candidate serves, and each check is only its interval's step."""
        if site not in self.scenarios:
            return
        self.prepared[site] = incumbent
        day = self.days.get(site)
        if day is not None:
            self._twin(site, incumbent, day).advance(day.observed, day.checked_through)

    def _twin(self, site: str, incumbent: PolicyRef, day: DayRun) -> IncumbentTwin:
        """The site's twin of ``incumbent`` on ``day`` (built when there is none yet)."""
        held = self.twins.get(site)
        if held is not None and held[:2] == (incumbent.key, day.day_key):
            return held[2]
        scenario = self.scenarios[site]
        policy = incumbent.name if incumbent.sha256 is None else self.fetch(incumbent)
        siteobj = load_site(scenario)
        engines = [build_engine(siteobj, policy) for _ in range(self.seeds)]
        plan = honest_plan(default_groups(scenario), day.started.day_start.date(), day.day_key)
        twin = IncumbentTwin(scenario, plan, engines, day.started.day_start.toordinal())
        self.twins[site] = (incumbent.key, day.day_key, twin)
        return twin

    def _incumbent(self, site: str) -> PolicyRef | None:
        """What the site's twin follows: the open canary's incumbent, else the prepared one."""
        open_ = self.canaries.get(site)
        if open_ is not None and open_.route.canary is not None:
            return open_.route.canary.incumbent
        return self.prepared.get(site)

    # -------------------------------------------------------------- records in

    def route(self, route: PolicyRoute) -> list[CanaryCheck]:
        """A control record: the site's route (highest revision wins). Returns an ``ended``
        record when a watched canary's route was replaced by someone else."""
        current = self.routes.get(route.site_id)
        if current is not None and route.revision <= current.revision:
            return []
        self.routes[route.site_id] = route
        site = route.site_id
        if site not in self.scenarios:
            return []
        out: list[CanaryCheck] = []
        open_ = self.canaries.get(site)
        if open_ is not None and (route.canary is None or route.canary != open_.route.canary):
            del self.canaries[site]
            if site not in self.ended and not self.replaying:
                reason = (
                    f"canary ended by revision {route.revision} ({route.action}): {route.reason}"
                )
                verdict = GateVerdict(site, "ended", reason, open_.first, tuple(open_.checks))
                self.ended[site] = verdict
                out.append(self._record(open_, verdict, None, None, route.revision))
        if route.canary is not None and site not in self.canaries:
            if route.revision == route.canary.started_revision:
                self.ended.pop(site, None)  # a new canary on this site
            self.canaries[site] = OpenCanary(route)
            self._sync_twin(site)
        return out

    def record(self, topic: str, timestamp_ms: int, event: Envelope) -> None:
        """A decoded record of a floor topic, the intervals topic or the allocations topic."""
        site = event.site_id
        if site not in self.scenarios:
            return
        day = self.days.get(site)
        if isinstance(event, DayStarted):
            if day is None or (event.day_key() != day.day_key and timestamp_ms >= day.timestamp_ms):
                self._start_day(site, event, timestamp_ms)
            return
        if day is None or timestamp_ms < day.timestamp_ms or day.complete:
            if day is None or timestamp_ms >= day.timestamp_ms:
                buffer = self.buffers.setdefault(site, deque(maxlen=BUFFER_RECORDS))
                buffer.append((topic, timestamp_ms, event))
            return
        self._apply(day, topic, timestamp_ms, event)

    def sorted_record(self, topic: str, timestamp_ms: int, site: str) -> None:
        """A ``package_sorted`` record, counted without being decoded: the gate needs only
        how many there were (for ``events_in_interval``), and they are most of a day's
        records."""
        day = self.days.get(site)
        if day is None or timestamp_ms < day.timestamp_ms or day.complete:
            if site in self.scenarios and (day is None or timestamp_ms >= day.timestamp_ms):
                buffer = self.buffers.setdefault(site, deque(maxlen=BUFFER_RECORDS))
                buffer.append((topic, timestamp_ms, None))
            return
        day.received[topic] += 1

    def _apply(self, day: DayRun, topic: str, timestamp_ms: int, event: Envelope | None) -> None:
        if event is None:  # a sorted record counted before its day_started was read
            day.received[topic] += 1
            return
        if isinstance(event, AllocationDecided):
            if topic == ALLOCATIONS.name and event.decision_id.startswith(
                f"{day.started.site_id}/{day.day_key}/"
            ):
                day.allocations.setdefault(event.interval_index, event)
        elif isinstance(event, IntervalClosed):
            if topic == INTERVALS.name and day.started.day_start <= event.interval_start:
                day.close(event, self.clock(), timestamp_ms)
        elif topic in FLOOR_TOPIC_NAMES:
            day.floor_event(topic, event)

    def _start_day(self, site: str, event: DayStarted, timestamp_ms: int) -> None:
        day = DayRun(event, timestamp_ms, self.scenarios[site])
        self.days[site] = day
        buffered = self.buffers.pop(site, deque())
        for topic, stamp, record in buffered:
            if stamp >= timestamp_ms:
                self._apply(day, topic, stamp, record)
        self._sync_twin(site)

    def _sync_twin(self, site: str) -> None:
        """The site's incumbent twin for its current day (the prepared one when it follows the
        same incumbent: then nothing is replayed here), and the open canary's hold of it."""
        day = self.days.get(site)
        incumbent = self._incumbent(site)
        if day is None or incumbent is None:
            return
        twin = self._twin(site, incumbent, day)
        # a canary opened mid-day without prepare(): the incumbent's day so far now, not at
        # the first check
        twin.advance(day.observed, day.checked_through)
        open_ = self.canaries.get(site)
        if open_ is None or open_.day_key == day.day_key:
            return
        open_.day_key = day.day_key
        open_.twin = twin
        open_.first = None
        open_.checks = []

    # -------------------------------------------------------------- checks out

    def ready(self) -> list[Verdict]:
        """Check every interval that is ready, in order; the verdicts to publish."""
        out: list[Verdict] = []
        now = self.clock()
        for site, day in self.days.items():
            last = day.checked_through
            while last + 1 < day.scenario.n_intervals and day.ready(last + 1, now, self.stall_s):
                last += 1
            held = self.twins.get(site)
            if last > day.checked_through and held is not None and held[1] == day.day_key:
                # kept current with or without a canary; a backlog (a watcher catching up) in
                # one step: the twins are causal, so interval k's counts do not depend on
                # arrivals after it and each check below is as exact as one step per close
                held[2].advance(day.observed, last)
            for k in range(day.checked_through + 1, last + 1):
                day.checked_through = k
                verdict = self._check(site, day, k)
                if verdict is not None:
                    out.append(verdict)
        return out

    def _check(self, site: str, day: DayRun, k: int) -> Verdict | None:
        open_ = self.canaries.get(site)
        if open_ is None or open_.twin is None or open_.day_key != day.day_key:
            return None
        twin = open_.twin
        twin.advance(day.observed, k)  # every interval, so a check never waits for a backlog
        allocation = day.allocations.get(k)
        served = allocation is not None and (allocation.route_revision or 0) >= open_.revision
        if open_.first is None:
            if not served:
                return None
            open_.first = k
        assert open_.route.canary is not None
        gate = open_.route.canary.gate
        window = slice(open_.first, k + 1)
        inducted = int(day.inducted[window].sum())
        if inducted < gate.min_inductions:
            return None
        canary_rate = int(day.recirculated[window].sum()) / inducted
        twin_inducted = max(int(twin.first_inductions[window].sum()), 1)
        incumbent_rate = int(twin.recirculated[window].sum()) / twin_inducted
        limit = gate.max_ratio * incumbent_rate + gate.slack
        open_.checks.append(
            GateCheck(k, inducted, canary_rate, incumbent_rate, limit, canary_rate <= limit)
        )
        verdict = judge(site, open_.route.canary, open_.first, open_.checks)
        routes: list[PolicyRoute] = []
        current = self.routes[site]
        if verdict.outcome == "fail":
            routes = [rollback_route(current, verdict.reason)]
        elif verdict.outcome == "pass":
            routes = promote_routes(self.routes, site, verdict.reason)
        if routes:
            del self.canaries[site]
            self.ended[site] = verdict
            for route in routes:
                self.routes[route.site_id] = route
        revision = next((r.revision for r in routes if r.site_id == site), None)
        latency = (self.clock() - day.closes[k]) * 1000.0
        record = self._record(open_, verdict, revision, latency, None)
        return Verdict(record, routes, verdict, day.close_stamps.get(k))

    def _record(
        self,
        open_: OpenCanary,
        verdict: GateVerdict,
        revision: int | None,
        latency_ms: float | None,
        ended_by: int | None,
    ) -> CanaryCheck:
        canary = open_.route.canary
        assert canary is not None
        last = open_.checks[-1] if open_.checks else None
        return CanaryCheck(
            event_id=f"canary-{uuid.uuid4().hex}",
            event_time=datetime.now(UTC),
            site_id=open_.route.site_id,
            day_key=open_.day_key or "none",
            interval=-1 if last is None else last.interval,
            first_interval=open_.first,
            inducted=0 if last is None else last.inducted,
            canary_rate=0.0 if last is None else last.canary_rate,
            incumbent_rate=0.0 if last is None else last.incumbent_rate,
            limit=0.0 if last is None else last.limit,
            passed=True if last is None else last.passed,
            failures=sum(not c.passed for c in open_.checks),
            checks=len(open_.checks),
            outcome=verdict.outcome,  # type: ignore[arg-type]
            candidate=open_.route.serving,
            incumbent=canary.incumbent,
            canary_revision=canary.started_revision,
            verdict_revision=revision if revision is not None else ended_by,
            latency_ms=latency_ms,
            reason=verdict.reason[:1000],
        )

    def watching(self, sites: set[str] | None = None) -> set[str]:
        """Sites (of ``sites``) with a canary open."""
        return {s for s in self.canaries if sites is None or s in sites}


__all__ = ["DayRun", "GateState", "OpenCanary", "Verdict"]
