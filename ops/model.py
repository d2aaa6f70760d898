"""The operations page's state: Kafka records in, one JSON-ready picture of every site out.

The model is fed record by record by a consumer that follows the topics (``ops/feed.py``); it
never re-reads a day. Each record updates a few counters or lists, so a page refresh costs a
snapshot of small dicts, however long the day. Everything here is pure (no I/O, no clock but
the records' own), so tests feed it records and check the page's state without a broker.

What it keeps per site:

- the routes (control topic), in revision order: what serves and shadows now, since which
  revision and why (the route that started it: its action and reason), and the route history;
- the canary episodes read off the routes (a route that opens a canary, the route that ends
  it), with the gate's checks as the gate publishes them, or, before the gate publishes any,
  the candidate's observed recirculation since it started, which is the left-hand side of
  every check;
- the latest days (``day_started``), each with per-interval floor counts (first inductions,
  recirculations, sortings, by the events' own times), the served allocation (policy, route
  revision, fallback) and each shadow's decision, compared with the served one in chutes;
- dead letters by kind (all sites), with the latest few.

Which day a floor event belongs to: the site's latest day whose ``day_started`` record Kafka
wrote no later than the event's own record, and whose span holds the event's time. A floor
event carries no day id, and Kafka orders a site's records only within one topic, so that is
the closest a follower can tie it to its day run; allocations and shadow decisions carry the
day key in their ``decision_id`` and are exact.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts.codec import DecodeError, decode, decode_route
from contracts.control import CanaryCheck, PolicyRoute
from contracts.events import (
    AllocationDecided,
    ChuteStateChanged,
    DayStarted,
    Envelope,
    IntervalClosed,
    PackageInducted,
    PackageRecirculated,
    PackageSorted,
)
from contracts.topics import (
    ALLOCATIONS,
    CANARY,
    CHUTE_STATE,
    CONTROL,
    DEAD_LETTER,
    INDUCTIONS,
    INTERVALS,
    SHADOW,
    SORTATION,
)
from stream.topic_reader import Record

DAYS_KEPT = 3
"""Days kept per site: the open one and the two before it (a late allocation of the day
before still lands in its own day)."""
RECENT_DEAD_LETTERS = 30
PENDING_LIMIT = 500_000
"""Floor events held while a day's interval length is unknown (it is known once the first
interval closes or the second allocation arrives); beyond this many, the oldest are dropped."""

EARLY_LIMIT = 100_000
"""Records held per site for a day whose ``day_started`` has not arrived yet (it arrives within
a consumer fetch or two); beyond this many, the oldest are dropped."""

_FLOOR_KINDS = ("inducted", "recirculated", "sorted")


@dataclass
class IntervalServed:
    """The allocation the floor was told to apply in one interval."""

    policy: str
    route_revision: int | None
    fallback_reason: str | None
    solver_status: str
    chutes: dict[str, int]


@dataclass
class DayView:
    """One site-day as the follower has seen it so far."""

    day_key: str
    day_start: datetime
    day_type_group: int | None
    """The planner's declared day type (None: the worker forecasts it from the calendar)."""
    started_ms: int
    interval_s: float | None = None
    n_intervals: int | None = None
    """Intervals of the day, where the site's scenario is known (``ops serve --scenario``)."""
    closed_through: int = -1
    floor: dict[str, Counter[int]] = field(
        default_factory=lambda: {kind: Counter() for kind in _FLOOR_KINDS}
    )
    pending: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=PENDING_LIMIT))
    served: dict[int, IntervalServed] = field(default_factory=dict)
    shadow: dict[str, dict[int, dict[str, int]]] = field(default_factory=dict)

    def learn_interval(self, seconds: float) -> None:
        """The interval length is known: count the floor events held until now."""
        if self.interval_s is not None or seconds <= 0:
            return
        self.interval_s = seconds
        while self.pending:
            self.count(*self.pending.popleft())

    def count(self, offset_s: float, kind: str) -> None:
        """One floor event ``offset_s`` after the day's start, in its interval as
        ``rollout.observe.floor_counts`` places it: an event at exactly the day's end belongs to
        the last interval, one after it to no interval of the day."""
        if self.interval_s is None:
            self.pending.append((offset_s, kind))
            return
        index = int(offset_s // self.interval_s)
        if self.n_intervals is not None:
            if offset_s > self.n_intervals * self.interval_s:
                return
            index = min(index, self.n_intervals - 1)
        self.floor[kind][index] += 1


@dataclass
class SiteView:
    site_id: str
    routes: dict[str, tuple[int, PolicyRoute]] = field(default_factory=dict)
    """event_id -> (Kafka timestamp, route); a redelivered route is one entry."""
    days: dict[str, DayView] = field(default_factory=dict)
    gate_checks: list[tuple[int, CanaryCheck]] = field(default_factory=list)
    """(Kafka timestamp, the gate's check) in arrival order."""
    early: deque[Record] = field(default_factory=lambda: deque(maxlen=EARLY_LIMIT))
    """Records of a day whose ``day_started`` has not arrived yet (one consumer delivers its
    topics in no set order), applied again when it does."""

    def hold(self, record: Record) -> None:
        """Keep a record no known day takes, if a day not seen yet may: one written after
        every known day started."""
        if all(day.started_ms <= record.timestamp_ms for day in self.days.values()):
            self.early.append(record)

    def ordered_routes(self) -> list[tuple[int, PolicyRoute]]:
        return sorted(self.routes.values(), key=lambda item: (item[1].revision, item[0]))

    def current_day(self) -> DayView | None:
        if not self.days:
            return None
        return max(self.days.values(), key=lambda day: day.started_ms)


DayObserver = Callable[[SiteView, DayView, Record, Envelope], None]
"""Told every event the model placed in a site-day (``day_started``, interval closes, floor
events, chute states, served and shadow allocations), with its record, under the model's lock:
``ops/twin_days.py`` keeps what the shadow twin needs without decoding the records again. It
must be quick (the follower waits on it)."""


class OpsModel:
    """Every site's state, updated by :meth:`apply`; read with ``ops.page_state.snapshot``.

    Thread-safe: the consumer thread applies under :attr:`lock`, and the page's state is
    read under it (``ops/page_state.py``).
    """

    def __init__(
        self, gate_topic: str = CANARY.name, days: dict[str, tuple[float, int]] | None = None
    ) -> None:
        self.gate_topic = gate_topic
        self.day_shape = dict(days or {})
        """Per site whose scenario is known: (interval seconds, intervals per day)."""
        self.sites: dict[str, SiteView] = {}
        self.dead_by_kind: Counter[str] = Counter()
        self.dead_recent: deque[dict[str, Any]] = deque(maxlen=RECENT_DEAD_LETTERS)
        self.records = 0
        self.version = 0
        self.dead_since_ms: int | None = None
        """Kafka time the follower reads dead letters from (set by the feed)."""
        self.lock = threading.Lock()
        self.observers: list[DayObserver] = []

    def site(self, site_id: str) -> SiteView:
        view = self.sites.get(site_id)
        if view is None:
            view = self.sites[site_id] = SiteView(site_id)
        return view

    # -- records in -------------------------------------------------------------------------

    def apply(self, record: Record) -> bool:
        """Take one record into the state; True when the page's picture changed. Records the
        page has no use for (undecodable floor records: the worker dead-letters those, and the
        dead letter is what the page shows) change nothing."""
        if record.value is None:
            return False
        with self.lock:
            self.records += 1
            changed = self._apply(record)
            if changed:
                self.version += 1
            return changed

    def _apply(self, record: Record) -> bool:
        assert record.value is not None
        if record.topic == CONTROL.name:
            return self._route(record)
        if record.topic == DEAD_LETTER.name:
            return self._dead_letter(record, record.value)
        if record.topic == self.gate_topic:
            return self._gate_check(record, record.value)
        if record.topic not in {INTERVALS.name, INDUCTIONS.name, SORTATION.name} | {
            ALLOCATIONS.name,
            SHADOW.name,
            CHUTE_STATE.name,
        }:
            return False
        try:
            event = decode(record.value)
        except DecodeError:
            return False
        if record.key != event.site_id.encode("utf-8"):
            return False  # the worker refuses a record whose key is not its site
        view = self.site(event.site_id)
        if isinstance(event, DayStarted):
            started = self._day_started(view, record, event)
            if started:
                self._tell(view, view.days[event.day_key()], record, event)
                self._apply_early(view)
            return started
        if isinstance(event, AllocationDecided):
            return self._allocation(view, record, event)
        if isinstance(event, ChuteStateChanged):
            day = self._day_of(view, record.timestamp_ms, event.event_time)
            if day is None:
                view.hold(record)
            else:
                self._tell(view, day, record, event)
            return False  # the page does not show chute states
        if isinstance(event, IntervalClosed):
            day = self._day_of(view, record.timestamp_ms, event.interval_start)
            if day is None:
                view.hold(record)
                return False
            self._tell(view, day, record, event)
            day.learn_interval((event.interval_end - event.interval_start).total_seconds())
            day.closed_through = max(day.closed_through, event.interval_index)
            return True
        if isinstance(event, PackageInducted | PackageSorted | PackageRecirculated):
            day = self._day_of(view, record.timestamp_ms, event.event_time)
            if day is None:
                view.hold(record)
                return False
            self._tell(view, day, record, event)
            offset = (event.event_time - day.day_start).total_seconds()
            if isinstance(event, PackageInducted):
                if event.attempt != 1:
                    return False
                day.count(offset, "inducted")
            else:
                day.count(offset, "sorted" if isinstance(event, PackageSorted) else "recirculated")
            return True
        return False

    def _day_started(self, view: SiteView, record: Record, event: DayStarted) -> bool:
        key = event.day_key()
        if key in view.days:
            return False  # a redelivered day_started is the same day
        previous = view.current_day()
        view.days[key] = DayView(key, event.day_start, event.day_type_group, record.timestamp_ms)
        shape = self.day_shape.get(view.site_id)
        if shape is not None:
            view.days[key].interval_s, view.days[key].n_intervals = shape
        elif previous is not None and previous.interval_s is not None:
            view.days[key].interval_s = previous.interval_s  # one site, one interval length
        for old in sorted(view.days.values(), key=lambda d: d.started_ms)[:-DAYS_KEPT]:
            del view.days[old.day_key]
        return True

    def _apply_early(self, view: SiteView) -> None:
        """Apply again the records held for a day not seen yet, now that one started."""
        early, view.early = list(view.early), deque(maxlen=EARLY_LIMIT)
        for held in early:
            self._apply(held)

    def _day_of(self, view: SiteView, timestamp_ms: int, when: datetime) -> DayView | None:
        """The latest day started no later than the record, whose span holds ``when``."""
        for day in sorted(view.days.values(), key=lambda d: d.started_ms, reverse=True):
            if day.started_ms > timestamp_ms or when < day.day_start:
                continue
            later = [d for d in view.days.values() if d.started_ms > day.started_ms]
            if later and timestamp_ms >= min(d.started_ms for d in later):
                return None  # written after the next day started: not this day's
            return day
        return None

    def _tell(self, view: SiteView, day: DayView, record: Record, event: Envelope) -> None:
        for observer in self.observers:
            observer(view, day, record, event)

    def _allocation(self, view: SiteView, record: Record, event: AllocationDecided) -> bool:
        shadow = record.topic == SHADOW.name
        parts = event.decision_id.split("/")
        day = view.days.get(parts[1]) if len(parts) >= 4 else None
        if day is None:
            view.hold(record)  # its day_started is late, or before the follower's horizon
            return False
        self._tell(view, day, record, event)
        if event.interval_index >= 1:
            gap = (event.interval_start - day.day_start).total_seconds() / event.interval_index
            day.learn_interval(gap)
        chutes = {d: n for d, n in event.chutes_per_destination.items() if n > 0}
        # labelled as routes label their policies (PolicyRef.label), so the two meet
        label = event.policy_name + (f"@{event.policy_sha256[:12]}" if event.policy_sha256 else "")
        if shadow:
            day.shadow.setdefault(label, {}).setdefault(event.interval_index, chutes)
            return True
        if event.interval_index in day.served:
            return False  # a redelivery: same id, same content
        day.served[event.interval_index] = IntervalServed(
            policy=label,
            route_revision=event.route_revision,
            fallback_reason=event.fallback_reason,
            solver_status=event.solver_status,
            chutes=chutes,
        )
        return True

    def _route(self, record: Record) -> bool:
        assert record.value is not None
        try:
            route = decode_route(record.value)
        except DecodeError:
            return False  # the worker dead-letters it; its dead letter shows on the page
        if record.key != route.site_id.encode("utf-8"):
            return False
        view = self.site(route.site_id)
        if route.event_id in view.routes:
            return False
        view.routes[route.event_id] = (record.timestamp_ms, route)
        return True

    def _dead_letter(self, record: Record, value: bytes) -> bool:
        try:
            body = json.loads(value)
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        kind = str(body.get("kind") or "other")
        self.dead_by_kind[kind] += 1
        self.dead_recent.appendleft(
            {
                "kind": kind,
                "reason": str(body.get("reason", ""))[:300],
                "topic": str(body.get("topic", "")),
                "key": _key_text(body.get("key_base64")),
                "time_ms": record.timestamp_ms,
            }
        )
        return True

    def _gate_check(self, record: Record, value: bytes) -> bool:
        try:
            check = CanaryCheck.model_validate_json(value)
        except ValueError:
            return False
        if record.key != check.site_id.encode("utf-8"):
            return False
        view = self.site(check.site_id)
        if any(c.event_id == check.event_id for _, c in view.gate_checks):
            return False  # a redelivered check
        view.gate_checks.append((record.timestamp_ms, check))
        return True


def _key_text(encoded: object) -> str:
    if not isinstance(encoded, str):
        return ""
    try:
        return base64.b64decode(encoded).decode("utf-8", errors="replace")[:128]
    except ValueError:
        return ""


__all__ = ["DayObserver", "DayView", "OpsModel", "SiteView"]
