"""Many sites' closed loops through one broker at once: the fleet replay.

:func:`replay_fleet` is :func:`replay.loop.replay_day` for N sites in one driver process. Each
site keeps its own loop (its twin runs interval k under the worker's allocation k, its package
events go out at ``event_time / pace``, then ``interval_closed`` with ``events_in_interval``,
counted by the same :class:`replay.loop.FloorRecords`), but nothing waits on one site: when
allocation k arrives, the site's twin runs interval k at once into a buffer, and one
scheduler publishes every site's buffered records when their wall moment comes. Interval k+1
still cannot start before allocation k+1 has arrived, so each site's KPIs are exactly those
of its in-process day (:func:`reference_run`) whatever the pace.

The wall clock is shared: every site's shift starts at the same wall moment, so sites whose
intervals divide each other (5, 15 and 30 minutes from the same hour) close them at the same
wall moments, the worst case for the workers. The days open (``day_started``) one deadline
before that moment (:func:`deadlines`).

:func:`make_fleet` writes the sites: built-in ``small`` and ``large`` under new site ids, and a
``medium`` synthetic layout (``twin/synth_site.py``) with day-type groups fitted the way the
shipped ones are (``twin.groups.build_default_groups``), each site with its own seed and
day-type group.
"""

from __future__ import annotations

import heapq
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from contracts.events import AllocationDecided, DayStarted
from contracts.topics import PARTITIONS, kafka_partition, message_key
from decision.build import build_engine
from floor.daytypes import default_groups
from floor.scenario import Scenario, load_scenario
from floor.site import load_site
from floor.site_file import write_site_file
from floor.site_guardrails import SiteGuardrails
from replay.loop import (
    FloorRecords,
    ReplayError,
    allocation_consumer,
    allocation_of,
    day_started_id,
    day_type_group,
    owner_of,
)
from replay.publisher import KafkaPublisher
from stream.clients import KafkaClientConfig
from twin.closed_loop import DayRun, run_day
from twin.day import DayDemand
from twin.groups import build_default_groups, sample_day
from twin.kpis import DayKPIs
from twin.sim import SortationTwin
from twin.synth_site import SynthParams, synth_scenario

QUANTUM_S = 0.005
"""Records due within this much wall time go out together: one pass of the driver's loop per
quantum at most, however many records a second 100 sites make (a close goes out at most this
early)."""

SIZES = ("small", "medium", "large")
"""Site sizes in the order :func:`make_fleet` deals them out (a third each)."""

MEDIUM = SynthParams(
    destinations=60,
    chutes=90,
    shift_hours=8,
    interval_minutes=15,
    daily_volume=48_000,
    name="fleet-medium",
)
"""Between ``small`` (20 destinations, 10 chutes, 1,200 packages/h, 30-minute intervals) and
``large`` (120, 187, 16,000/h, 5 minutes): 60 destinations, 90 chutes, 6,000/h, 15 minutes, so
the three sizes' interval ends coincide every 30 minutes."""


@dataclass(frozen=True)
class FleetSite:
    """One site of the fleet and the day it replays."""

    size: str
    scenario_file: Path
    """The site's scenario YAML: what every worker is given (``--scenario``)."""
    demand: DayDemand
    seed: int
    """Seed of the sampled day and of the twin."""
    group: int
    """Day-type group the day is sampled from."""
    intervals: int
    """Intervals replayed: the first ``--hours`` of the shift."""

    @property
    def scenario(self) -> Scenario:
        return self.demand.scenario

    @property
    def site_id(self) -> str:
        return self.demand.scenario.site_id


def _layouts(folder: Path) -> dict[str, Scenario]:
    """The three layouts; the medium one's groups file is written beside its site files."""
    medium = synth_scenario(MEDIUM)
    groups = folder / f"groups-{medium.name}.npz"
    if not groups.is_file():
        build_default_groups(medium).save(groups)
    small, large = _with_guardrails("small"), _with_guardrails("large")
    return {"small": small, "medium": medium, "large": large}


def _with_guardrails(name: str) -> Scenario:
    """A built-in layout with its shipped guardrail set written in: a site file carries its
    guardrails (the site catalog checks files strictly), the limits and version unchanged."""
    scenario = load_scenario(name)
    limits = SiteGuardrails.from_set(load_site(scenario).guardrails)
    return scenario.model_copy(update={"guardrails": limits})


def make_fleet(
    n_sites: int, folder: Path, *, hours: float, seed: int = 0, prefix: str = "fleet"
) -> list[FleetSite]:
    """``n_sites`` site files in ``folder`` (sizes dealt small, medium, large in turn) and
    each site's day: seed ``seed + i``, day-type group ``i`` modulo the layout's groups. Site
    ids are ``<prefix>-<size>-<i>`` (the bench's warm-up sites take another prefix).

    A built-in layout keeps its ``name`` (so its shipped groups and guardrails apply) under a
    site id of its own; the medium layout's groups file sits beside the site files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    layouts = _layouts(folder)
    sites = []
    for i in range(n_sites):
        size = SIZES[i % len(SIZES)]
        site_id = f"{prefix}-{size}-{i:03d}"
        path = write_site_file(
            layouts[size].model_copy(update={"site_id": site_id}),
            folder / f"{site_id}.yaml",
            header=f"fleet bench site {i}: the {size} layout under its own site id",
        )
        scenario = load_scenario(path)
        groups = default_groups(scenario)
        group = i % groups.n_groups
        day_seed = seed + i
        demand = sample_day(groups, group, scenario, seed=day_seed)
        intervals = min(scenario.n_intervals, max(1, round(hours * 60 / scenario.interval_minutes)))
        sites.append(FleetSite(size, path, demand, day_seed, group, intervals))
    return sites


def deadlines(site: FleetSite, shift_start: float, pace: float, grace_s: float) -> list[float]:
    """Unix wall time each allocation of ``site`` is due, intervals ``0..site.intervals``.

    Interval k > 0 starts when interval k-1 closes, at ``shift_start + start_k / pace``; its
    allocation is due ``grace_s`` floor seconds (``grace_s / pace`` wall seconds) later. The
    first allocation is due by the shift start itself: the day opened ``grace_s`` floor
    seconds before it (:func:`replay_fleet`), so every decision has the same budget.
    """
    step = site.scenario.interval_minutes * 60.0
    return [
        shift_start if k == 0 else shift_start + (k * step + grace_s) / pace
        for k in range(site.intervals + 1)
    ]


@dataclass(frozen=True)
class Decided:
    """One allocation as the fleet driver read it (unix wall seconds)."""

    site_id: str
    interval_index: int
    decision_id: str
    triggered_at: float
    """When the record that asked for it was produced: ``day_started`` for interval 0, else
    the close of the interval before."""
    published_at: float
    """The allocation record's Kafka timestamp (the worker's producer, same host clock)."""
    received_at: float
    due_at: float | None
    """Deadline (:func:`deadlines`); None at ``pace=None``."""

    @property
    def latency_s(self) -> float:
        return self.published_at - self.triggered_at


@dataclass
class FleetSiteResult:
    site_id: str
    size: str
    day: str
    """The run's day key (``contracts.events.day_key``), as in the site's decision ids."""
    kpis: DayKPIs
    allocations: list[AllocationDecided]
    """The allocations the twin ran, intervals ``0..intervals-1``."""
    decided: list[Decided]
    """Every allocation read (also the one after the last replayed close)."""
    events: int
    repeats: int = 0
    """Allocation records read again for an interval already decided."""


@dataclass
class FleetResult:
    sites: list[FleetSiteResult]
    shift_start: float
    """Unix wall time the shifts started."""
    wall_seconds: float
    events_published: int
    late_closes: list[float] = field(default_factory=list)
    """Seconds each close went out after its wall moment (the driver's own lateness)."""


@dataclass
class _Loop:
    """One site's closed loop inside the fleet driver."""

    site: FleetSite
    day: str
    twin: SortationTwin
    records: FloorRecords
    pending: deque[tuple[float, str, bytes, bool]]
    """(floor seconds since the shift start, topic, value, is a close), oldest first."""
    received: dict[int, AllocationDecided] = field(default_factory=dict)
    decided: list[Decided] = field(default_factory=list)
    triggered: dict[int, float] = field(default_factory=dict)
    """Interval index -> wall time of the record that asks for its allocation."""
    repeats: int = 0
    events: int = 0

    @property
    def done(self) -> bool:
        twin, last = self.twin, self.site.intervals
        waits_last = last < self.site.scenario.n_intervals and last not in self.received
        return twin.interval_index >= last and not self.pending and not waits_last


def _open_loop(site: FleetSite, run_id: str) -> _Loop:
    pending: deque[tuple[float, str, bytes, bool]] = deque()
    day_start = site.demand.day_start

    def buffer(kind: str, topic: str, moment: datetime, value: bytes) -> None:
        offset = (moment - day_start).total_seconds()
        pending.append((offset, topic, value, kind == "interval_closed"))

    records = FloorRecords(buffer)
    twin = SortationTwin(site.scenario, site.demand, seed=site.seed, emit=records)
    day = DayStarted(
        event_id=day_started_id(site.site_id, site.demand, run_id),
        event_time=day_start,
        site_id=site.site_id,
        day_start=day_start,
        day_type_group=0,
    ).day_key()
    return _Loop(site, day, twin, records, pending)


def replay_fleet(
    sites: Sequence[FleetSite],
    bootstrap: str | KafkaClientConfig,
    *,
    pace: float | None = 10.0,
    grace_s: float = 10.0,
    run_id: str | None = None,
    allocation_timeout_s: float = 120.0,
    at: Sequence[tuple[float, Callable[[], None]]] = (),
) -> FleetResult:
    """Replay every site's day concurrently, closing each loop with the workers' allocations.

    ``pace``: floor seconds per wall second (None: as fast as the loops go). ``grace_s``:
    floor seconds an allocation may come after its interval starts (:func:`deadlines`).
    ``at``: ``(floor seconds since the shift start, action)`` pairs, each run once when the
    floor clock passes it (paced: the wall clock; at ``pace=None``: the most advanced site's
    last close), e.g. killing a worker mid-shift.

    Raises:
        ReplayError: a site got no allocation within ``allocation_timeout_s`` of asking.
    """
    run = run_id or uuid.uuid4().hex[:12]
    publisher = KafkaPublisher(bootstrap)
    consumer = allocation_consumer(bootstrap)
    loops = [_open_loop(site, run) for site in sites]
    by_key = {message_key(loop.site.site_id): loop for loop in loops}
    index = {loop.site.site_id: i for i, loop in enumerate(loops)}
    actions = sorted(at, key=lambda item: item[0])
    late: list[float] = []
    heap: list[tuple[float, int]] = []
    lead = 0.0 if pace is None else grace_s / pace
    started = time.monotonic()
    try:
        opened = time.time()
        for loop in loops:
            site = loop.site
            opening = DayStarted(
                event_id=day_started_id(site.site_id, site.demand, run),
                event_time=site.demand.day_start,
                site_id=site.site_id,
                day_start=site.demand.day_start,
                day_type_group=day_type_group(default_groups(site.scenario), site.demand),
            )
            loop.triggered[0] = time.time()
            publisher.publish(opening)
        publisher.flush()
        shift_start = opened + lead
        shift_mono = started + lead
        due_at = {
            loop.site.site_id: deadlines(loop.site, shift_start, pace, grace_s) if pace else None
            for loop in loops
        }

        def due(offset: float) -> float:
            return 0.0 if pace is None else shift_mono + offset / pace

        def on_allocation(loop: _Loop, event: AllocationDecided, timestamp_ms: int) -> None:
            k = event.interval_index
            if f"/{loop.day}/" not in event.decision_id:
                return  # another run of a site with this id
            if k in loop.received:
                loop.repeats += 1
                return
            loop.received[k] = event
            deadline = due_at[loop.site.site_id]
            loop.decided.append(
                Decided(
                    loop.site.site_id,
                    k,
                    event.decision_id,
                    loop.triggered.get(k, float("nan")),
                    timestamp_ms / 1e3,
                    time.time(),
                    None if deadline is None or k >= len(deadline) else deadline[k],
                )
            )
            was_idle = not loop.pending
            while loop.twin.interval_index < loop.site.intervals:
                allocation = loop.received.get(loop.twin.interval_index)
                if allocation is None:
                    break
                loop.twin.run_interval(owner_of(loop.site.scenario, allocation))
            if was_idle and loop.pending:
                heapq.heappush(heap, (due(loop.pending[0][0]), index[loop.site.site_id]))

        def publish_due(until: float) -> None:
            while heap and heap[0][0] <= until:
                _, i = heapq.heappop(heap)
                loop = loops[i]
                key = message_key(loop.site.site_id)
                pending = loop.pending
                while pending and due(pending[0][0]) <= until:
                    offset, topic, value, close = pending.popleft()
                    publisher.produce(topic, key, value)
                    loop.events += 1
                    if close:
                        moment = time.time()
                        index = round(offset / (loop.site.scenario.interval_minutes * 60.0))
                        loop.triggered[index] = moment
                        if pace is not None:
                            late.append(moment - (shift_start + offset / pace))
                if pending:
                    heapq.heappush(heap, (due(pending[0][0]), i))

        def floor_clock(now: float) -> float:
            if pace is not None:
                return (now - shift_mono) * pace
            # the most advanced site's last close (triggered[k]: the close of interval k-1), so
            # an action at t finds every other site still before t
            return max(
                max(loop.triggered) * loop.site.scenario.interval_minutes * 60.0 for loop in loops
            )

        flushed = checked = time.monotonic()
        open_loops = set(range(len(loops)))
        while open_loops:
            now = time.monotonic()
            while actions and floor_clock(now) >= actions[0][0]:
                actions.pop(0)[1]()
            publish_due(now + QUANTUM_S)
            if now - flushed > 0.5:
                publisher.flush()
                flushed = now
            wait = 0.05 if not heap else heap[0][0] - QUANTUM_S - time.monotonic()
            for message in consumer.consume(1000, min(0.05, max(0.0, wait))):
                if message.error() is not None:
                    continue
                target = by_key.get(message.key() or b"")
                event = None if target is None else allocation_of(message.value() or b"")
                if target is not None and event is not None:
                    on_allocation(target, event, message.timestamp()[1])
            if now - checked > 0.5 or not heap:
                open_loops = {i for i in open_loops if not loops[i].done}
                _check_waits([loops[i] for i in open_loops], allocation_timeout_s)
                checked = now
        publisher.flush()
    finally:
        consumer.close()
    return FleetResult(
        sites=[
            FleetSiteResult(
                site_id=loop.site.site_id,
                size=loop.site.size,
                day=loop.day,
                kpis=loop.twin.kpis(),
                allocations=[loop.received[k] for k in range(loop.site.intervals)],
                decided=sorted(loop.decided, key=lambda d: d.interval_index),
                events=loop.events,
                repeats=loop.repeats,
            )
            for loop in loops
        ],
        shift_start=shift_start,
        wall_seconds=time.monotonic() - started,
        events_published=publisher.sent,
        late_closes=late,
    )


def _check_waits(loops: Sequence[_Loop], timeout_s: float) -> None:
    """Raise if any site asked for an allocation longer than ``timeout_s`` ago."""
    now = time.time()
    stuck = []
    for loop in loops:
        if loop.done:
            continue
        k = loop.twin.interval_index
        asked = loop.triggered.get(k)
        if k not in loop.received and asked is not None and now - asked > timeout_s:
            stuck.append(f"{loop.site.site_id} interval {k}")
    if stuck:
        raise ReplayError(
            f"no allocation within {timeout_s:g} s for {len(stuck)} site(s): "
            f"{', '.join(stuck[:5])}{' ...' if len(stuck) > 5 else ''}: are the workers running?"
        )


def reference_run(site: FleetSite, day: str, policy: str = "proportional") -> DayRun:
    """The site's day in process (``twin.closed_loop.run_day``, the same day key, truncated to
    the same intervals): what the replay must equal, KPIs and allocations."""
    engine = build_engine(load_site(site.scenario), policy)
    return run_day(engine, site.demand, site.seed, day=day, intervals=site.intervals)


def site_partitions(sites: Sequence[FleetSite]) -> dict[str, int]:
    """Site id -> the input partition its records land on (murmur2, as every producer)."""
    return {site.site_id: kafka_partition(message_key(site.site_id), PARTITIONS) for site in sites}


__all__ = [
    "MEDIUM",
    "SIZES",
    "Decided",
    "FleetResult",
    "FleetSite",
    "FleetSiteResult",
    "deadlines",
    "make_fleet",
    "reference_run",
    "replay_fleet",
    "site_partitions",
]
