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
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from contracts.codec import DecodeError, decode, decode_route, encode
from contracts.control import PolicyRef, PolicyRoute
from contracts.events import (
    AllocationDecided,
    DayStarted,
    Envelope,
    IntervalClosed,
    PackageInducted,
    PackageRecirculated,
    day_key,
)
from contracts.limits import InputLimits
from contracts.topics import (
    ALLOCATIONS,
    CHUTE_STATE,
    CONTROL,
    DECISIONS_AUDIT,
    INDUCTIONS,
    INTERVALS,
    SHADOW,
    SORTATION,
    TopicSpec,
    message_key,
)
from decision.admission import (
    DAYS_REMEMBERED,
    SeenWindow,
    SiteCalendar,
    check_day_started,
    check_floor_event,
    check_interval_closed,
)
from decision.engine import Decision, DecisionEngine
from decision.state import SiteState
from decision.tracker import SiteTracker, TrackerConfig, UnknownEntityError
from floor.errors import ChuteflowError
from floor.plan import DayPlan
from stream.deadletter import OutRecord, dead_letter, reason_kind

FloatArray = npt.NDArray[np.float64]

FLOOR_TOPICS: tuple[TopicSpec, ...] = (INDUCTIONS, SORTATION, CHUTE_STATE)
"""Topics whose records the tracker counts (and ``events_in_interval`` names)."""
EVENT_TOPICS: tuple[TopicSpec, ...] = (*FLOOR_TOPICS, INTERVALS)
"""Input topics of contract events (``contracts.events``)."""
INPUT_TOPICS: tuple[TopicSpec, ...] = (*EVENT_TOPICS, CONTROL)
"""Everything the worker's one agent consumes, in one stream so a site stays on one worker;
the control topic too, so a site's routes reach the worker that owns it."""
_BY_NAME = {spec.name: spec for spec in EVENT_TOPICS}
_FLOOR_NAMES = frozenset(spec.name for spec in FLOOR_TOPICS)


@dataclass(frozen=True)
class DecisionObserved:
    """What a decision looked like, for metrics (the processor stays free of a metrics lib)."""

    site_id: str
    interval_index: int
    total_ms: float
    solver_status: str
    policy_error: str | None
    policy_name: str
    policy_version: str


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
    received_next: Counter[str] = field(default_factory=Counter)
    """Valid floor records of the interval after the open one (kept apart, see the tracker)."""
    at_boundary: list[tuple[str, Envelope]] = field(default_factory=list)
    """Records at exactly the open interval's end, waiting for its close's counts."""
    counted_closes: bool = False
    """The site's closes announce their records (``events_in_interval``): records past the
    open interval wait for its close instead of closing it by event time."""
    """Valid floor records applied per topic since the last close."""
    pending: IntervalClosed | None = None
    pending_since: float = 0.0
    pending_next: IntervalClosed | None = None
    """The next interval's close, read while the open one's still waits for its records."""
    partition: int | None = None
    """Partition the site's records arrive on (the table changelog partition)."""
    offsets: dict[str, int] = field(default_factory=dict)
    """Last input offset applied per ``topic/partition``: records at or below it were already
    applied before a restart and are skipped, so none is counted twice."""
    day_event_id: str | None = None
    """``event_id`` of the open day's ``day_started`` (a redelivery has the same one)."""
    days_seen: list[str] = field(default_factory=list)
    """``event_id`` of the last days' ``day_started`` records (a copy is a duplicate)."""
    seen: SeenWindow = field(default_factory=SeenWindow)
    day_totals: Counter[str] = field(default_factory=Counter)
    """Records of the day by kind (first inductions, recirculations): the observed rate."""
    plan_for: Callable[[date, str], DayPlan] | None = None
    """The honest plan of a date (``floor/forecast.py``), day key given; None: the declared
    day type's shares are the plan."""
    engine_for: Callable[[PolicyRef], DecisionEngine] | None = None
    """Builds the engine of a routed policy (``stream.worker.make_site``); None: routes are
    refused (the site serves its one engine)."""
    route: PolicyRoute | None = None
    """The site's control-topic route (``contracts/control.py``); None: ``engine`` serves."""
    engines: dict[str, DecisionEngine] = field(default_factory=dict)
    """Engines of the route's policies by ``PolicyRef.key``, made when the route arrived
    (sessions loaded ahead of the boundary where they start to decide)."""
    _calendar: SiteCalendar | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.tracker = SiteTracker(self.config)

    def plan(self) -> DayPlan:
        """The day's plan: the calendar forecast over the site's groups, updated online by the
        engine, exactly as the twin and evaluation build it (``twin.closed_loop.day_plan``);
        the ``day_started`` record's declared day type is not trusted as the plan."""
        assert self.day_type_group is not None and self.day_start is not None
        day = "" if self.day_event_id is None else day_key(self.day_start, self.day_event_id)
        if self.plan_for is not None:
            return self.plan_for(self.day_start.date(), day)
        return DayPlan(expected_share=self.day_shares(self.day_type_group), day=day)

    def belief(self) -> dict[str, Any] | None:
        """The online plan's state (every engine of the site observes the same arrivals)."""
        belief = self.serving().belief
        return None if belief is None else belief.to_dict()

    def calendar(self) -> SiteCalendar:
        """The open interval's calendar, made once per interval (every record reads it)."""
        assert self.day_start is not None
        cached = self._calendar
        if (
            cached is None
            or cached.day_start != self.day_start
            or cached.open_index != self.tracker.interval_index
        ):
            cached = self._calendar = SiteCalendar(
                day_start=self.day_start,
                interval=timedelta(minutes=self.interval_minutes),
                n_intervals=self.config.n_intervals,
                open_index=self.tracker.interval_index,
            )
        return cached

    @property
    def route_revision(self) -> int:
        return 0 if self.route is None else self.route.revision

    def serving(self) -> DecisionEngine:
        """The engine that decides the site's next allocation."""
        if self.route is None:
            return self.engine
        return self.engines[self.route.serving.key]

    def shadows(self) -> list[tuple[PolicyRef, DecisionEngine]]:
        """The route's shadow policies and their engines."""
        if self.route is None:
            return []
        return [(ref, self.engines[ref.key]) for ref in self.route.shadows]

    def set_route(self, route: PolicyRoute | None) -> None:
        """Serve ``route`` from the next decision on: its engines are made now (a policy that
        cannot be loaded raises, and the current route stays), then swapped in. An engine that
        joins mid-day resumes the day's plan with no solver hint."""
        if route is None:
            self.route, self.engines = None, {}
            return
        if self.engine_for is None:
            raise ValueError("this worker serves one policy per site (no routing)")
        engines = {}
        for ref in route.policies():
            engine = self.engines.get(ref.key)
            if engine is None:
                engine = self.engine_for(ref)
                if self.day_open:
                    engine.resume(self.plan(), None, self.belief())
            engines[ref.key] = engine
        self.route, self.engines = route, engines

    def all_engines(self) -> dict[str, DecisionEngine]:
        """The default engine and the route's, by key (``default`` for the ``--policy`` one)."""
        return {"default": self.engine, **self.engines}

    def reset(self) -> None:
        """Forget everything (the site's partition went to another worker)."""
        self.tracker = SiteTracker(self.config)
        self.day_start = None
        self.day_type_group = None
        self.day_event_id = None
        self.received.clear()
        self.received_next.clear()
        self.at_boundary = []
        self.counted_closes = False
        self.pending = None
        self.pending_next = None
        self.partition = None
        self.offsets.clear()
        self.days_seen = []
        self.seen.clear()
        self.day_totals.clear()
        self.route, self.engines = None, {}

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
            "received_next": dict(self.received_next),
            "counted_closes": self.counted_closes,
            "at_boundary": [[topic, encode(e).decode("utf-8")] for topic, e in self.at_boundary],
            "pending": None if self.pending is None else encode(self.pending).decode("utf-8"),
            "pending_next": (
                None if self.pending_next is None else encode(self.pending_next).decode("utf-8")
            ),
            "offsets": dict(self.offsets),
            "day_event_id": self.day_event_id,
            "days_seen": list(self.days_seen),
            "hint": None if self.engine.hint is None else self.engine.hint.tolist(),
            "belief": self.belief() if self.day_open else None,
            "route": None if self.route is None else encode(self.route).decode("utf-8"),
            "route_hints": {
                key: None if engine.hint is None else engine.hint.tolist()
                for key, engine in self.engines.items()
            },
            "seen": self.seen.to_dict(),
            "day_totals": dict(self.day_totals),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Continue from a table snapshot after a restart or a partition hand-over: the state,
        the input offsets it includes, the duplicate window and the solver hint, so every later
        decision is the one an uninterrupted worker would have made."""
        self.offsets = {str(k): int(v) for k, v in dict(data.get("offsets") or {}).items()}
        self.days_seen = [str(d) for d in data.get("days_seen") or []]
        # The snapshot's route, not one read at start-up: a redelivered close must be decided
        # by the policy that decided it before; later control records follow in offset order.
        route = data.get("route")
        self.set_route(None if route is None else decode_route(str(route).encode("utf-8")))
        if data.get("day_start") is None or data.get("day_type_group") is None:
            return
        group = int(data["day_type_group"])
        shares = self.day_shares(group)
        self.tracker = SiteTracker.from_dict(self.config, dict(data["tracker"]), shares)
        self.day_start = datetime.fromisoformat(str(data["day_start"]))
        self.day_type_group = group
        event_id = data.get("day_event_id")
        self.day_event_id = None if event_id is None else str(event_id)
        hint = data.get("hint")
        belief = data.get("belief")
        plan = self.plan()
        self.engine.resume(plan, None if hint is None else np.asarray(hint), belief)
        hints = dict(data.get("route_hints") or {})
        for key, engine in self.engines.items():
            routed = hints.get(key)
            engine.resume(plan, None if routed is None else np.asarray(routed), belief)
        self.seen = SeenWindow.from_dict(data.get("seen"), self.seen.depth)
        self.day_totals = Counter(
            {str(k): int(v) for k, v in (data.get("day_totals") or {}).items()}
        )
        self.received = Counter({str(k): int(v) for k, v in dict(data["received"]).items()})
        upcoming = dict(data.get("received_next") or {})
        self.received_next = Counter({str(k): int(v) for k, v in upcoming.items()})
        self.counted_closes = bool(data.get("counted_closes", False))
        self.at_boundary = [
            (str(topic), decode(str(value).encode("utf-8"), _BY_NAME[str(topic)]))
            for topic, value in data.get("at_boundary") or []
        ]
        following = data.get("pending_next")
        self.pending_next = None
        if following is not None:
            event = decode(str(following).encode("utf-8"), INTERVALS)
            self.pending_next = event if isinstance(event, IntervalClosed) else None
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
        limits: input plausibility (``contracts/limits.py``).
        on_decision: called with every decision's summary (metrics).
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
        self.prefetch: Callable[[list[bytes]], None] = lambda values: None
        """Loads the policies that control records name ahead of :meth:`handle` (the worker
        fetches store artifacts into its cache; a thread may run it)."""
        self.dirty: set[str] = set()
        """Sites whose snapshot changed since the agent last wrote the table."""
        self.stats: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()
        """Dead letters by reason kind (``stream.deadletter.reason_kind``)."""

    # ------------------------------------------------------------------ input

    def site_of_key(self, key: bytes | None) -> SiteRuntime | None:
        if key is None:
            return None
        try:
            return self.sites.get(key.decode("utf-8"))
        except UnicodeDecodeError:
            return None

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
        """
        keyed = self.site_of_key(key)
        if keyed is not None and offset >= 0:
            # per topic *and* partition: a producer with another partitioner can put records
            # with a site's key on other partitions, whose offsets say nothing about this one
            where = f"{topic}/{partition}"
            if offset <= keyed.offsets.get(where, -1):
                self.stats["redelivered_skipped"] += 1
                return []
            keyed.offsets[where] = offset
            keyed.partition = partition if partition >= 0 else keyed.partition
            self.dirty.add(keyed.config.site_id)
        self.stats["records"] += 1
        out = self._route(topic, key, value, partition)
        kinds = [reason_kind(r.reason) for r in out if isinstance(r, _Rejected)]
        if kinds:
            self.stats["dead_lettered"] += len(kinds)
            self.dead_letters.update(kinds)
            out = [
                dead_letter(
                    r.reason,
                    topic=topic,
                    key=key,
                    value=value,
                    partition=partition,
                    offset=offset,
                    max_value_bytes=self.limits.dead_letter_value_bytes,
                )
                if isinstance(r, _Rejected)
                else r
                for r in out
            ]
        else:
            self.stats["accepted"] += 1
        return [r for r in out if isinstance(r, OutRecord)]

    def _route(
        self, topic: str, key: bytes | None, value: bytes, partition: int
    ) -> list[OutRecord | _Rejected]:
        if topic == CONTROL.name:
            return self._control(key, value)
        spec = _BY_NAME.get(topic)
        if spec is None:
            return [_Rejected(f"not_input_topic: {topic[:200]} is not an input topic")]
        try:
            event = decode(value, spec)
        except DecodeError as error:
            return [_Rejected(f"decode: {error.reason}")]
        if key is not None and key != message_key(event.site_id):
            return [
                _Rejected(f"key_mismatch: record key {key[:64]!r} is not site {event.site_id!r}")
            ]
        site = self.sites.get(event.site_id)
        if site is None:
            return [
                _Rejected(
                    f"unknown_site: {event.site_id!r}: this worker serves {sorted(self.sites)}"
                )
            ]
        if partition >= 0:
            site.partition = partition
        if isinstance(event, DayStarted):
            return self._day_started(site, event)
        if not site.day_open:
            return [_Rejected(f"before_day: {type(event).__name__} before day_started")]
        if isinstance(event, IntervalClosed):
            return self._interval_closed(site, event)
        if isinstance(event, AllocationDecided):  # not on an input topic; decode() forbids it
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
        if isinstance(event, PackageInducted) and event.attempt == 1:
            site.day_totals["first_inductions"] += 1
        elif isinstance(event, PackageRecirculated):
            site.day_totals["recirculated"] += 1
        self.dirty.add(event.site_id)
        return out + self._try_close(site)

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

    def _control(self, key: bytes | None, value: bytes) -> list[OutRecord | _Rejected]:
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
        day_length = timedelta(minutes=site.interval_minutes * site.config.n_intervals)
        problem = check_day_started(event, site.days_seen, day_length)
        if problem is not None:
            return [_Rejected(problem)]
        try:
            shares = site.day_shares(event.day_type_group)
        except IndexError:
            return [_Rejected(f"implausible_field: unknown day_type_group {event.day_type_group}")]
        site.day_start = event.day_start
        site.day_type_group = event.day_type_group
        site.day_event_id = event.event_id
        site.days_seen = [*site.days_seen, event.event_id][-DAYS_REMEMBERED:]
        site.tracker.start_day(shares)
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
        problem = check_interval_closed(event, site.calendar(), self.limits, _FLOOR_NAMES)
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
        start = site.interval_start(state.interval_index)
        # The allocation's time is its interval's start, not the wall clock: a redelivered or
        # replayed decision is then byte-identical, and replay is deterministic.
        revision = site.route_revision
        decision = site.serving().decide(
            state, interval_start=start, now=start, route_revision=revision
        )
        site.tracker.apply_owner(decision.owner, state.interval_index)
        self.stats["decisions"] += 1
        if self.on_decision is not None:
            self.on_decision(_observed(site.config.site_id, decision))
        key = message_key(site.config.site_id)
        audit = {
            "decision_id": decision.event.decision_id,
            "site_id": site.config.site_id,
            "interval_index": state.interval_index,
            "trigger": how,
            "worker": self.worker_id,
            "solver_status": decision.event.solver_status,
            "policy": {
                "name": decision.event.policy_name,
                "version": decision.event.policy_version,
                "sha256": decision.event.policy_sha256,
            },
            "route_revision": revision,
            "fallback_reason": decision.fallback_reason,
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
        out = [OutRecord(ALLOCATIONS.name, key, encode(decision.event))]
        shadows = []
        for ref, engine in site.shadows():
            # The same live state, projection and validator; never the allocation topic, and
            # never the tracker's chute owners (the floor runs the served allocation).
            shadow = engine.decide(state, interval_start=start, now=start, route_revision=revision)
            out.append(OutRecord(SHADOW.name, key, encode(shadow.event)))
            shadows.append(
                {
                    "policy": ref.label,
                    "decision_id": shadow.event.decision_id,
                    "chutes_differing": int(np.abs(shadow.counts - decision.counts).sum()) // 2,
                    "total_ms": round(shadow.timings_ms.get("total", 0.0), 3),
                    "fallback_reason": shadow.fallback_reason,
                }
            )
        audit["shadows"] = shadows
        out.append(OutRecord(DECISIONS_AUDIT.name, key, json.dumps(audit, sort_keys=True).encode()))
        return out


@dataclass(frozen=True)
class _Rejected:
    """A reason to dead-letter the record being handled (turned into one by ``handle``)."""

    reason: str


def _observed(site_id: str, decision: Decision) -> DecisionObserved:
    event = decision.event
    return DecisionObserved(
        site_id=site_id,
        interval_index=event.interval_index,
        total_ms=decision.timings_ms.get("total", 0.0),
        solver_status=event.solver_status,
        policy_error=decision.policy_error,
        policy_name=event.policy_name,
        policy_version=event.policy_version,
    )


def events_of(records: Iterable[OutRecord], topic: str) -> list[Envelope]:
    """Decoded contract events among ``records`` on ``topic`` (for tests and tools)."""
    return [decode(r.value) for r in records if r.topic == topic]
