"""The worker's record handling without Kafka: bytes in, records to publish out.

The faust agent (:mod:`stream.agents`) only moves bytes between Kafka and
:meth:`StreamProcessor.handle`; everything here is synchronous and testable in memory. The
arithmetic lives in :mod:`decision.tracker` and :mod:`decision.engine`; this module decodes,
routes, decides *when* an interval closes, and encodes.

When an interval closes (the ordering design)
---------------------------------------------
Topics are per event family (``contracts.topics``) and Kafka orders records only within one
partition of one topic. All floor topics are keyed by site with the same partition count, so a
site's records of every topic sit on the same partition number and one worker of a group gets
them all (faust assigns an agent's topics co-partitioned). Across topics they may still be
consumed in any order. Three facts make that safe:

1. The tracker's counters are sums, so within an interval the order of inductions, sortation
   and chute events does not matter; chute events (the only order-dependent ones) share one
   topic and therefore one partition.
2. ``interval_closed`` may overtake the interval's last records from other topics. The
   producer (replay, or a WCS that can) puts ``events_in_interval`` (records per floor topic
   since its previous close) on it; the worker closes only once it has applied that many
   valid records of each topic for the site. Without counts, it closes on receipt.
3. Records of the *next* interval cannot overtake: in the closed loop the floor runs interval
   k+1 only under allocation k+1, which the worker publishes after closing k. For a live floor
   that does not wait, a floor event whose time is past the open interval's end closes it
   first (event time), and a wall-clock timer closes an interval whose close is stuck waiting
   for records (``stall_seconds``) or, in live mode, one with no close at all
   (``live_grace_seconds`` after its end).

A site's day starts with ``day_started`` (``contracts.events.DayStarted``): it resets the
tracker, gives the policy its day plan (the day-type group's expected shares) and triggers the
first decision, which has no interval close before it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from contracts.codec import DecodeError, decode, encode
from contracts.events import (
    AllocationDecided,
    DayStarted,
    Envelope,
    IntervalClosed,
)
from contracts.topics import (
    ALLOCATIONS,
    CHUTE_STATE,
    DECISIONS_AUDIT,
    INDUCTIONS,
    INTERVALS,
    SORTATION,
    TopicSpec,
    message_key,
)
from decision.engine import DecisionEngine
from decision.state import SiteState
from decision.tracker import SiteTracker, TrackerConfig, UnknownEntityError
from floor.plan import DayPlan
from stream.deadletter import OutRecord, dead_letter

FloatArray = npt.NDArray[np.float64]

FLOOR_TOPICS: tuple[TopicSpec, ...] = (INDUCTIONS, SORTATION, CHUTE_STATE)
"""Topics whose records the tracker counts (and ``events_in_interval`` names)."""
INPUT_TOPICS: tuple[TopicSpec, ...] = (*FLOOR_TOPICS, INTERVALS)
"""Everything the worker's one agent consumes, in one stream so a site stays on one worker."""
_BY_NAME = {spec.name: spec for spec in INPUT_TOPICS}


@dataclass
class SiteRuntime:
    """One site served by this worker: its layout, tracker, engine and close bookkeeping."""

    config: TrackerConfig
    engine: DecisionEngine
    day_shares: Callable[[int], FloatArray]
    """Expected shares ``[n_intervals, D]`` of a day-type group (raises IndexError if none)."""
    interval_minutes: float
    tracker: SiteTracker = field(init=False)
    day_start: datetime | None = None
    day_type_group: int | None = None
    received: Counter[str] = field(default_factory=Counter)
    """Valid floor records applied per topic since the last close."""
    pending: IntervalClosed | None = None
    pending_since: float = 0.0
    partition: int | None = None
    """Partition the site's records arrive on (the table changelog partition)."""

    def __post_init__(self) -> None:
        self.tracker = SiteTracker(self.config)

    @property
    def day_open(self) -> bool:
        return self.day_start is not None

    def interval_start(self, index: int) -> datetime:
        assert self.day_start is not None
        return self.day_start + timedelta(minutes=self.interval_minutes * index)

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready state for the faust table (never pickle)."""
        return {
            "tracker": self.tracker.to_dict(),
            "day_start": None if self.day_start is None else self.day_start.isoformat(),
            "day_type_group": self.day_type_group,
            "received": dict(self.received),
            "pending": None if self.pending is None else encode(self.pending).decode("utf-8"),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Continue from a table snapshot after a restart or a partition hand-over."""
        if data.get("day_start") is None or data.get("day_type_group") is None:
            return
        group = int(data["day_type_group"])
        shares = self.day_shares(group)
        self.tracker = SiteTracker.from_dict(self.config, dict(data["tracker"]), shares)
        self.day_start = datetime.fromisoformat(str(data["day_start"]))
        self.day_type_group = group
        self.engine.start_day(DayPlan(expected_share=shares))
        self.received = Counter({str(k): int(v) for k, v in dict(data["received"]).items()})
        pending = data.get("pending")
        self.pending = None
        if pending is not None:
            event = decode(str(pending).encode("utf-8"), INTERVALS)
            if isinstance(event, IntervalClosed):
                self.pending = event
                self.pending_since = time.monotonic()


class StreamProcessor:
    """Routes decoded records to site trackers and decides when an interval closes.

    Args:
        sites: the sites this worker serves, by site id; anything else is dead-lettered.
        stall_seconds: wall seconds a close may wait for records it was told about.
        live_grace_seconds: if set, close an interval this long after its end on the wall
            clock even without any close event (a live, quiet site). Off for replay, whose
            days lie in the past.
        clock: wall clock (seconds, monotonic) for the stall timer; injectable for tests.
        worker_id: who decides (``host/pid`` in ``chuteflow worker``); written on every audit
            record as ``worker`` so an audit shows which worker of a group decided a site.
    """

    def __init__(
        self,
        sites: Mapping[str, SiteRuntime],
        *,
        stall_seconds: float = 30.0,
        live_grace_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        worker_id: str | None = None,
    ) -> None:
        self.sites = dict(sites)
        self.stall_seconds = stall_seconds
        self.live_grace_seconds = live_grace_seconds
        self.clock = clock
        self.worker_id = worker_id
        self.dirty: set[str] = set()
        """Sites whose snapshot changed since the agent last wrote the table."""
        self.stats: Counter[str] = Counter()

    # ------------------------------------------------------------------ input

    def handle(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int = -1,
        offset: int = -1,
    ) -> list[OutRecord]:
        """One input record -> the records to publish (allocations, audit, dead letters)."""
        self.stats["records"] += 1

        def reject(reason: str) -> list[OutRecord]:
            self.stats["dead_lettered"] += 1
            return [
                dead_letter(
                    reason, topic=topic, key=key, value=value, partition=partition, offset=offset
                )
            ]

        spec = _BY_NAME.get(topic)
        if spec is None:
            return reject(f"{topic} is not an input topic of the worker")
        try:
            event = decode(value, spec)
        except DecodeError as error:
            return reject(error.reason)
        if key is not None and key != message_key(event.site_id):
            return reject(f"record key {key!r} does not match site_id {event.site_id!r}")
        site = self.sites.get(event.site_id)
        if site is None:
            return reject(
                f"unknown site {event.site_id!r}: this worker serves {sorted(self.sites)}"
            )
        if partition >= 0:
            site.partition = partition
        if isinstance(event, DayStarted):
            return self._day_started(site, event, reject)
        if not site.day_open:
            return reject(f"{event.event_type} before day_started for site {event.site_id!r}")
        if isinstance(event, IntervalClosed):
            return self._interval_closed(site, event)
        if isinstance(event, AllocationDecided):  # not on an input topic; decode() forbids it
            return reject("allocation_decided is not an input event")
        out: list[OutRecord] = []
        end = site.interval_start(site.tracker.interval_index + 1)
        in_day = site.tracker.interval_index < site.config.n_intervals
        if site.pending is None and in_day and event.event_time > end:
            out += self._close(site, site.tracker.interval_index, "event_time")
        try:
            site.tracker.apply(event)
        except UnknownEntityError as error:
            return out + reject(str(error))
        site.received[topic] += 1
        self.dirty.add(event.site_id)
        return out + self._try_close(site)

    def handle_many(
        self, records: Iterable[tuple[str, bytes | None, bytes, int, int]]
    ) -> list[OutRecord]:
        out: list[OutRecord] = []
        for topic, key, value, partition, offset in records:
            out += self.handle(topic, key, value, partition, offset)
        return out

    def on_timer(self, wall_now: datetime | None = None) -> list[OutRecord]:
        """Close intervals stuck waiting for records, and (live mode) overdue ones."""
        out: list[OutRecord] = []
        now = self.clock()
        for site in self.sites.values():
            if not site.day_open or site.tracker.interval_index >= site.config.n_intervals:
                continue
            pending = site.pending
            if pending is not None and now - site.pending_since > self.stall_seconds:
                out += self._close(site, site.tracker.interval_index, "stalled")
                out += self._try_close(site)
            elif pending is None and self.live_grace_seconds is not None:
                wall = wall_now or datetime.now(UTC)
                end = site.interval_start(site.tracker.interval_index + 1)
                if wall > end + timedelta(seconds=self.live_grace_seconds):
                    out += self._close(site, site.tracker.interval_index, "timer")
        return out

    # ------------------------------------------------------------------ day and intervals

    def _day_started(
        self, site: SiteRuntime, event: DayStarted, reject: Callable[[str], list[OutRecord]]
    ) -> list[OutRecord]:
        if site.day_start == event.day_start and site.tracker.allocated_through >= 0:
            self.stats["duplicates"] += 1
            return []  # a redelivered day start: the day is already under way
        try:
            shares = site.day_shares(event.day_type_group)
        except IndexError:
            return reject(f"unknown day_type_group {event.day_type_group} for {event.site_id!r}")
        site.day_start = event.day_start
        site.day_type_group = event.day_type_group
        site.tracker.start_day(shares)
        site.engine.start_day(DayPlan(expected_share=shares))
        site.received.clear()
        site.pending = None
        self.dirty.add(event.site_id)
        return self._decide(site, site.tracker.state(), "day_started")

    def _interval_closed(self, site: SiteRuntime, event: IntervalClosed) -> list[OutRecord]:
        if event.interval_index < site.tracker.interval_index:
            self.stats["duplicates"] += 1
            return []  # redelivered or already closed by event time / timer
        site.pending = event
        site.pending_since = self.clock()
        self.dirty.add(site.config.site_id)
        return self._try_close(site)

    def _try_close(self, site: SiteRuntime) -> list[OutRecord]:
        out: list[OutRecord] = []
        while site.pending is not None:
            pending = site.pending
            open_index = site.tracker.interval_index
            if pending.interval_index > open_index:
                # a close was lost: the intervals before it end without their counts
                out += self._close(site, open_index, "skipped")
                continue
            declared = pending.events_in_interval
            if declared is not None and any(site.received[t] < n for t, n in declared.items()):
                break
            out += self._close(site, open_index, "interval_closed")
        return out

    def _close(self, site: SiteRuntime, index: int, how: str) -> list[OutRecord]:
        declared = None
        if site.pending is not None and site.pending.interval_index == index:
            declared = site.pending.events_in_interval
            site.pending = None
        counted = dict(site.received)
        site.received.clear()
        state = site.tracker.close_interval(index)
        self.dirty.add(site.config.site_id)
        self.stats[f"closed_{how}"] += 1
        if state.interval_index >= site.config.n_intervals:
            return []  # the day's last interval: nothing left to decide
        return self._decide(site, state, how, counted=counted, declared=declared)

    def _decide(
        self,
        site: SiteRuntime,
        state: SiteState,
        how: str,
        counted: dict[str, int] | None = None,
        declared: dict[str, int] | None = None,
    ) -> list[OutRecord]:
        start = site.interval_start(state.interval_index)
        # The allocation's time is its interval's start, not the wall clock: a redelivered or
        # replayed decision is then byte-identical, and replay is deterministic.
        decision = site.engine.decide(state, interval_start=start, now=start)
        site.tracker.apply_owner(decision.owner, state.interval_index)
        self.stats["decisions"] += 1
        key = message_key(site.config.site_id)
        audit = {
            "decision_id": decision.event.decision_id,
            "site_id": site.config.site_id,
            "interval_index": state.interval_index,
            "trigger": how,
            "worker": self.worker_id,
            "solver_status": decision.event.solver_status,
            "proven_optimal": decision.proven_optimal,
            "moves": decision.moves,
            "policy_error": decision.policy_error,
            "timings_ms": {k: round(v, 3) for k, v in decision.timings_ms.items()},
            "inputs": {
                "arrivals_last_interval": int(state.arrivals[0].sum()),
                "recirculated_last_interval": int(state.recirculated.sum()),
                "backlog": int(state.backlog.sum()),
                "chutes_available": int(state.chute_available.sum()),
                "chutes_open": int(state.chute_open.sum()),
                "chutes_held": int(state.held().sum()),
                "records_counted": counted or {},
                "records_declared": declared,
            },
        }
        return [
            OutRecord(ALLOCATIONS.name, key, encode(decision.event)),
            OutRecord(DECISIONS_AUDIT.name, key, json.dumps(audit, sort_keys=True).encode()),
        ]


def events_of(records: Iterable[OutRecord], topic: str) -> list[Envelope]:
    """Decoded contract events among ``records`` on ``topic`` (for tests and tools)."""
    return [decode(r.value) for r in records if r.topic == topic]
