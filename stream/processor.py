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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from contracts.codec import DecodeError, decode, decode_route
from contracts.events import (
    AllocationDecided,
    DayStarted,
    Envelope,
    IntervalClosed,
    PackageInducted,
    PackageRecirculated,
)
from contracts.limits import InputLimits
from contracts.topics import (
    CONTROL,
    DECISIONS_AUDIT,
    kafka_partition,
    message_key,
)
from decision.admission import (
    DAYS_REMEMBERED,
    SeenWindow,
    check_day_started,
    check_floor_event,
    check_interval_closed,
)
from decision.state import SiteState
from decision.tracker import UnknownEntityError
from floor.errors import ChuteflowError
from stream.deadletter import OutRecord, dead_letter, reason_kind
from stream.decisions import decision_records
from stream.inputs import BY_NAME, EVENT_TOPICS, FLOOR_NAMES, FLOOR_TOPICS, INPUT_TOPICS
from stream.observations import UNKNOWN_SITE, DeadLetterObserved, DecisionObserved
from stream.site_runtime import SiteRuntime


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
        limits: input plausibility (``contracts/limits.py``).
        on_decision: called with every decision's summary, served and shadow (metrics, log).
        on_dead_letter: called with every dead letter's summary (metrics, log).
        partitions: the input topics' partition count. When given (the worker gives
            ``contracts.topics.PARTITIONS``), a record that arrived on a partition other than
            the one its site's key hashes to is dead-lettered as ``wrong_partition`` (see
            :meth:`handle`); None (in-memory tests, tools) does not check.
    """

    def __init__(
        self,
        sites: Mapping[str, SiteRuntime],
        *,
        stall_seconds: float = 30.0,
        live_grace_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        worker_id: str | None = None,
        limits: InputLimits | None = None,
        on_decision: Callable[[DecisionObserved], None] | None = None,
        on_dead_letter: Callable[[DeadLetterObserved], None] | None = None,
        partitions: int | None = None,
    ) -> None:
        self.sites = dict(sites)
        self.stall_seconds = stall_seconds
        self.live_grace_seconds = live_grace_seconds
        self.clock = clock
        self.worker_id = worker_id
        self.limits = limits or InputLimits()
        for site in self.sites.values():
            site.seen.depth = SeenWindow.depth_for(
                self.limits.event_time_skew_s, site.interval_minutes * 60.0
            )
        self.on_decision = on_decision
        self.on_dead_letter = on_dead_letter
        self.partitions = partitions
        self._site_partitions: dict[str, int] = {}
        """Partition of each served site's key (``partitions`` is fixed for the processor)."""
        self.prefetch: Callable[[list[bytes]], None] = lambda values: None
        """Loads the policies that control records name ahead of :meth:`handle` (the worker
        fetches store artifacts into its cache; a thread may run it)."""
        self.dirty: set[str] = set()
        """Sites whose snapshot changed since the agent last wrote the table."""
        self.stats: Counter[str] = Counter()
        # Monotonic counts for metrics, by site (the served site a record's key names, else
        # UNKNOWN_SITE); read when Prometheus scrapes, so the hot path only adds to a Counter.
        self.records: Counter[tuple[str, str]] = Counter()
        """Input records handled (not skipped as redeliveries) by (site, topic)."""
        self.dead_letters: Counter[tuple[str, str]] = Counter()
        """Dead letters by (site, reason kind) (``stream.deadletter.reason_kind``)."""
        self.redelivered: Counter[str] = Counter()
        """Records skipped as applied before a restart, by site."""
        self.allocations: Counter[str] = Counter()
        """Allocations published, by site."""
        self.inducted: Counter[str] = Counter()
        """Packages inducted for the first time (``attempt == 1``), by site."""
        self.recirculated: Counter[str] = Counter()
        """Packages sent round again, by site."""
        self.pending_sites: dict[str, SiteRuntime] = {}
        """A served site's next runtime (a changed site catalog entry), swapped in at the
        site's next ``day_started`` (:meth:`add_site`)."""

    # ------------------------------------------------------------------ sites

    def add_site(self, site_id: str, site: SiteRuntime) -> str:
        """Serve ``site`` (from the site catalog, ``stream/site_catalog.py``): a new site at
        once (``"added"``); a site already served from its next ``day_started`` on
        (``"pending"``), so a running day ends on the layout and plan it started with."""
        site.seen.depth = SeenWindow.depth_for(
            self.limits.event_time_skew_s, site.interval_minutes * 60.0
        )
        if site_id not in self.sites:
            self.sites[site_id] = site
            return "added"
        self.pending_sites[site_id] = site
        return "pending"

    def remove_site(self, site_id: str) -> bool:
        """Stop serving ``site_id`` (its records are dead-lettered as ``unknown_site`` from
        now on); whether it was served. The caller deletes its table snapshot."""
        self.pending_sites.pop(site_id, None)
        self.dirty.discard(site_id)
        return self.sites.pop(site_id, None) is not None

    def _next_runtime(self, site: SiteRuntime) -> SiteRuntime:
        """``site``'s pending runtime, if any, made the served one: it takes over what ties the
        site to its records (input offsets, partition, days seen) and its route when the new
        layout can serve it (else its catalog policy serves)."""
        site_id = site.config.site_id
        new = self.pending_sites.pop(site_id, None)
        if new is None:
            return site
        new.offsets, new.partition, new.days_seen = site.offsets, site.partition, site.days_seen
        new.counted_closes = site.counted_closes
        if site.route is not None:
            try:
                new.set_route(site.route)
            except (ChuteflowError, ValueError):
                self.stats["routes_refused"] += 1
        self.sites[site_id] = new
        self.stats["sites_replaced"] += 1
        return new

    # ------------------------------------------------------------------ input

    def site_of_key(self, key: bytes | None) -> SiteRuntime | None:
        if key is None:
            return None
        try:
            return self.sites.get(key.decode("utf-8"))
        except UnicodeDecodeError:
            return None

    def wrong_partition(self, site_id: str, partition: int) -> int | None:
        """The partition ``site_id``'s records belong on, if ``partition`` is not it (else
        None; also None when this processor does not check partitions)."""
        if self.partitions is None or partition < 0:
            return None
        expected = self._site_partitions.get(site_id)
        if expected is None:
            # murmur2 in Python is ~12 us and every record asks (up to three times): served
            # sites' partitions are remembered, anything else is hashed each time (a hostile
            # key must not grow the map)
            expected = kafka_partition(message_key(site_id), self.partitions)
            if site_id in self.sites:
                self._site_partitions[site_id] = expected
        return None if expected == partition else expected

    def handle(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int = -1,
        offset: int = -1,
    ) -> list[OutRecord]:
        """One input record -> the records to publish (allocations, audit, dead letters).

        A record of a served site (by key) at or below the site's last applied offset on its
        topic was applied before a restart: it is skipped, with no output, so state and
        dead letters are exactly-once per record.

        A record of a served site on a partition other than the one its key hashes to
        (murmur2, Java's default partitioner: ``contracts.topics.kafka_partition``) is
        dead-lettered as ``wrong_partition``, never applied. Why not apply it: a worker owns
        a site's state only through the site's partition (its table changelog partition, its
        input offsets); the worker that consumes another partition may not hold that state
        at all, or hold a stale copy, and applying the record there would fork the site's
        state or lose the record at the next hand-over. Dead-lettering it keeps the original
        bytes for re-publishing, and the count (``chuteflow_dead_letters_total{reason=
        "wrong_partition"}``) shows operators the misconfigured producer (librdkafka's
        default ``consistent_random`` partitioner instead of ``murmur2_random``). Such a
        dead letter is at-least-once (no site state records the offsets of a partition the
        site does not live on), unlike every other.
        """
        keyed = self.site_of_key(key)
        label = UNKNOWN_SITE if keyed is None else keyed.config.site_id
        if keyed is not None:
            expected = self.wrong_partition(label, partition)
            if expected is not None:
                self.stats["records"] += 1
                self.records[(label, topic)] += 1
                reason = _misplaced(label, topic, partition, expected)
                return self._letters([reason], label, topic, key, value, partition, offset)
        if keyed is not None and offset >= 0:
            # per topic *and* partition: a producer with another partitioner can put records
            # with a site's key on other partitions, whose offsets say nothing about this one
            where = f"{topic}/{partition}"
            if offset <= keyed.offsets.get(where, -1):
                self.stats["redelivered_skipped"] += 1
                self.redelivered[label] += 1
                return []
            keyed.offsets[where] = offset
            keyed.partition = partition if partition >= 0 else keyed.partition
            self.dirty.add(keyed.config.site_id)
        self.stats["records"] += 1
        self.records[(label, topic)] += 1
        out = self._route(topic, key, value, partition, keyed=keyed)
        if not out:  # most records: applied, nothing to publish
            self.stats["accepted"] += 1
            return []
        if any(isinstance(r, _Rejected) for r in out):
            return self._letters(out, label, topic, key, value, partition, offset)
        self.stats["accepted"] += 1
        return [r for r in out if isinstance(r, OutRecord)]

    def _letters(
        self,
        out: list[OutRecord | _Rejected],
        site: str,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int,
        offset: int,
    ) -> list[OutRecord]:
        """``out`` with each rejection turned into its dead-letter record, counted."""
        records = []
        for r in out:
            if isinstance(r, OutRecord):
                records.append(r)
                continue
            kind = reason_kind(r.reason)
            self.stats["dead_lettered"] += 1
            self.dead_letters[(site, kind)] += 1
            if self.on_dead_letter is not None:
                self.on_dead_letter(
                    DeadLetterObserved(site, topic, partition, offset, kind, r.reason)
                )
            records.append(
                dead_letter(
                    r.reason,
                    topic=topic,
                    key=key,
                    value=value,
                    partition=partition,
                    offset=offset,
                    max_value_bytes=self.limits.dead_letter_value_bytes,
                )
            )
        return records

    def _route(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int,
        *,
        keyed: SiteRuntime | None = None,
    ) -> list[OutRecord | _Rejected]:
        """Decode and dispatch one record. ``keyed``: the served site its key names, whose
        partition :meth:`handle` has checked already."""
        if topic == CONTROL.name:
            return self._control(key, value, partition)
        spec = BY_NAME.get(topic)
        if spec is None:
            return [_Rejected(f"not_input_topic: {topic[:200]} is not an input topic")]
        try:
            event = decode(value, spec)
        except DecodeError as error:
            return [_Rejected(f"decode: {error.reason}")]
        if keyed is not None and event.site_id == keyed.config.site_id:
            site: SiteRuntime | None = keyed  # most records: the key's site (no re-encoding)
        elif key is not None and key != message_key(event.site_id):
            return [
                _Rejected(f"key_mismatch: record key {key[:64]!r} is not site {event.site_id!r}")
            ]
        else:
            site = self.sites.get(event.site_id)
        if site is None:
            return [
                _Rejected(
                    f"unknown_site: {event.site_id!r}: this worker serves {sorted(self.sites)}"
                )
            ]
        if keyed is None:  # a keyed record's partition was checked in handle
            expected = self.wrong_partition(event.site_id, partition)
            if expected is not None:
                return [_misplaced(event.site_id, topic, partition, expected)]
        if partition >= 0:
            site.partition = partition
        # exact types: the contract's event models are final (and this runs once a record)
        if type(event) is DayStarted:
            return self._day_started(site, event)
        if not site.day_open:
            return [_Rejected(f"before_day: {type(event).__name__} before day_started")]
        if type(event) is IntervalClosed:
            return self._interval_closed(site, event)
        if type(event) is AllocationDecided:  # not on an input topic; decode() forbids it
            return [_Rejected("not_input_topic: allocation_decided is not an input event")]
        return self._floor_event(site, topic, event)

    def _floor_event(
        self, site: SiteRuntime, topic: str, event: Envelope
    ) -> list[OutRecord | _Rejected]:
        config = site.config
        try:  # what the record names first: that does not depend on when it is read
            site.tracker.check(event)
        except UnknownEntityError as error:
            return [_Rejected(f"unknown_entity: {error}")]
        problem = check_floor_event(
            event,
            site.calendar(),
            self.limits,
            max_attempts=config.max_attempts,
            induction_stations=config.induction_stations,
        )
        if problem is not None:
            return [_Rejected(problem)]
        out: list[OutRecord | _Rejected] = []
        end = site.interval_start(site.tracker.interval_index + 1)
        in_day = site.tracker.interval_index < config.n_intervals
        upcoming = site.counted_closes and in_day and event.event_time > end
        if not site.seen.check_and_add(event, upcoming=upcoming):
            return [_Rejected(f"duplicate: {type(event).__name__} already applied")]
        if site.counted_closes and in_day and event.event_time >= end:
            # A floor that announces its closes with counts closes the open interval itself;
            # a record from past its end belongs to the next one (a restarted worker reads
            # those before the close the old worker had already acted on) and is kept apart
            # until the close. One at exactly the end is ambiguous (an interval's last
            # sortings end there, the next one's first inductions start there): the close's
            # counts decide, so it waits for them.
            if event.event_time > end:
                self._apply(site, topic, event, upcoming=True)
            elif site.pending is not None and site.pending.events_in_interval is not None:
                self._apply(site, topic, event, upcoming=self._counted_full(site, topic))
            else:
                site.at_boundary.append((topic, event))
        else:
            if in_day and event.event_time > end and site.pending is None:
                out += self._close(site, site.tracker.interval_index, "event_time")
            self._apply(site, topic, event, upcoming=False)
        if type(event) is PackageInducted:  # exact types: the event models are final
            if event.attempt == 1:
                site.day_totals["first_inductions"] += 1
                self.inducted[event.site_id] += 1
        elif type(event) is PackageRecirculated:
            site.day_totals["recirculated"] += 1
            self.recirculated[event.site_id] += 1
        self.dirty.add(event.site_id)
        if site.pending is not None:  # most records: no close waits for them
            out += self._try_close(site)
        return out

    @staticmethod
    def _apply(site: SiteRuntime, topic: str, event: Envelope, *, upcoming: bool) -> None:
        site.tracker.apply(event, next_interval=upcoming)
        (site.received_next if upcoming else site.received)[topic] += 1

    @staticmethod
    def _counted_full(site: SiteRuntime, topic: str) -> bool:
        """The pending close's count for ``topic`` is reached: more belongs to the next."""
        assert site.pending is not None and site.pending.events_in_interval is not None
        return site.received[topic] >= site.pending.events_in_interval.get(topic, 0)

    def _settle_boundary(self, site: SiteRuntime) -> None:
        """Records at exactly the open interval's end, once its close (or a timeout) says how
        many of them it still had: those complete its counts, the rest open the next."""
        held, site.at_boundary = site.at_boundary, []
        counted = site.pending is not None and site.pending.events_in_interval is not None
        for topic, event in held:
            self._apply(site, topic, event, upcoming=counted and self._counted_full(site, topic))

    def _control(
        self, key: bytes | None, value: bytes, partition: int = -1
    ) -> list[OutRecord | _Rejected]:
        """A route for a site: applied from the site's next decision on; an old revision (a
        redelivery, or a route read at start-up) is ignored."""
        try:
            route = decode_route(value)
        except DecodeError as error:
            return [_Rejected(f"decode: {error.reason}")]
        if key is not None and key != message_key(route.site_id):
            return [
                _Rejected(f"key_mismatch: record key {key[:64]!r} is not site {route.site_id!r}")
            ]
        site = self.sites.get(route.site_id)
        if site is None:
            return [
                _Rejected(
                    f"unknown_site: {route.site_id!r}: this worker serves {sorted(self.sites)}"
                )
            ]
        expected = self.wrong_partition(route.site_id, partition)
        if expected is not None:
            return [_misplaced(route.site_id, CONTROL.name, partition, expected)]
        if route.revision <= site.route_revision:
            self.stats["routes_stale"] += 1
            return []
        try:
            site.set_route(route)
        except (ChuteflowError, ValueError) as error:
            self.stats["routes_refused"] += 1
            return [_Rejected(f"policy_refused: route revision {route.revision}: {error}")]
        self.stats["routes_applied"] += 1
        self.dirty.add(route.site_id)
        audit = {
            "kind": "route_received",
            "site_id": route.site_id,
            "revision": route.revision,
            "action": route.action,
            "serving": route.serving.label,
            "shadows": [ref.label for ref in route.shadows],
            "reason": route.reason,
            "worker": self.worker_id,
            "open_interval": site.tracker.interval_index if site.day_open else None,
        }
        body = json.dumps(audit, sort_keys=True).encode()
        return [OutRecord(DECISIONS_AUDIT.name, message_key(route.site_id), body)]

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

    def _day_started(self, site: SiteRuntime, event: DayStarted) -> list[OutRecord | _Rejected]:
        upcoming = self.pending_sites.get(event.site_id, site)
        day_length = timedelta(minutes=upcoming.interval_minutes * upcoming.config.n_intervals)
        problem = check_day_started(event, site.days_seen, day_length)
        if problem is not None:
            return [_Rejected(problem)]
        site = self._next_runtime(site)
        # day_type_group is only a hint: the engines plan from the site's own forecast, so an
        # absent or unknown one never costs the day (only a site without a forecast needs it)
        group = event.day_type_group if site.knows_group(event.day_type_group) else None
        if group is None and site.plan_for is None:
            return [
                _Rejected(
                    f"implausible_field: day_type_group {event.day_type_group!r} is not a group "
                    "of this site, and it has no forecast to plan from"
                )
            ]
        if group != event.day_type_group:
            self.stats["day_type_group_ignored"] += 1
        site.day_start = event.day_start
        site.day_type_group = group
        site.day_event_id = event.event_id
        site.days_seen = [*site.days_seen, event.event_id][-DAYS_REMEMBERED:]
        site.tracker.start_day(site.tracker_shares())
        plan = site.plan()
        for engine in site.all_engines().values():
            engine.start_day(plan)
        site.received.clear()
        site.received_next.clear()
        site.at_boundary = []
        site.pending = None
        site.pending_next = None
        site.seen.clear()
        site.day_totals.clear()
        self.dirty.add(event.site_id)
        return list(self._decide(site, site.tracker.state(), "day_started"))

    def _interval_closed(
        self, site: SiteRuntime, event: IntervalClosed
    ) -> list[OutRecord | _Rejected]:
        problem = check_interval_closed(event, site.calendar(), self.limits, FLOOR_NAMES)
        if problem is not None:
            return [_Rejected(problem)]
        if site.pending is not None and site.pending.interval_index >= event.interval_index:
            return [_Rejected(f"duplicate: interval {event.interval_index}'s close is pending")]
        if site.pending is not None and site.pending.events_in_interval is not None:
            # The open interval's close still waits for records and the next close is here
            # already: a restarted worker catching up (closes share one partition, so the
            # open one's was not lost). It waits its turn instead of cutting the open short.
            if site.pending_next is not None:
                return [_Rejected(f"duplicate: interval {event.interval_index}'s close waits")]
            site.pending_next = event
            self.dirty.add(site.config.site_id)
            return []
        site.pending = event
        site.pending_since = self.clock()
        if event.events_in_interval is not None:
            site.counted_closes = True
        if event.interval_index == site.tracker.interval_index:
            self._settle_boundary(site)
        self.dirty.add(site.config.site_id)
        return list(self._try_close(site))

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
        if site.at_boundary:  # a close without counts (or by timer): they end this interval
            held, site.at_boundary = site.at_boundary, []
            for topic, event in held:
                self._apply(site, topic, event, upcoming=False)
        declared = None
        if site.pending is not None and site.pending.interval_index == index:
            declared = site.pending.events_in_interval
            site.pending, site.pending_next = site.pending_next, None
            site.pending_since = self.clock()
        counted = dict(site.received)
        site.received = site.received_next
        site.received_next = Counter()
        site.seen.roll()
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
        out = decision_records(
            site,
            state,
            how,
            worker_id=self.worker_id,
            counted=counted,
            declared=declared,
            on_decision=self.on_decision,
        )
        self.stats["decisions"] += 1
        self.allocations[site.config.site_id] += 1
        return out


@dataclass(frozen=True)
class _Rejected:
    """A reason to dead-letter the record being handled (turned into one by ``handle``)."""

    reason: str


def _misplaced(site_id: str, topic: str, partition: int, expected: int) -> _Rejected:
    return _Rejected(
        f"wrong_partition: site {site_id!r} record on {topic[:200]} partition {partition}; "
        f"its key hashes to partition {expected} (murmur2, Java's default partitioner: "
        "librdkafka producers need partitioner=murmur2_random)"
    )


def events_of(records: Iterable[OutRecord], topic: str) -> list[Envelope]:
    """Decoded contract events among ``records`` on ``topic`` (for tests and tools)."""
    return [decode(r.value) for r in records if r.topic == topic]


__all__ = [
    "EVENT_TOPICS",
    "FLOOR_TOPICS",
    "INPUT_TOPICS",
    "DecisionObserved",
    "SiteRuntime",
    "StreamProcessor",
    "events_of",
]
