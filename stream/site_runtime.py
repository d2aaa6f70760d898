"""One site a worker serves: its tracker, engines, route and interval-close bookkeeping.

:class:`SiteRuntime` is the state the worker keeps per site and writes to the faust table
(:meth:`SiteRuntime.snapshot`, JSON, never pickle) so that a restarted worker, or the next
owner of the site's partition, continues exactly where the last one stopped
(:meth:`SiteRuntime.restore`). When its fields change is decided by
:class:`stream.processor.StreamProcessor`; this module only holds them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from contracts.codec import decode, decode_route, encode
from contracts.control import PolicyRef, PolicyRoute
from contracts.events import Envelope, IntervalClosed, day_key
from contracts.topics import INTERVALS
from decision.admission import SeenWindow, SiteCalendar
from decision.engine import DecisionEngine
from decision.tracker import SiteTracker, TrackerConfig
from floor.plan import DayPlan
from stream.inputs import BY_NAME

FloatArray = npt.NDArray[np.float64]


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
    _interval_start: tuple[datetime, int, datetime] | None = field(
        default=None, init=False, repr=False
    )

    def __post_init__(self) -> None:
        self.tracker = SiteTracker(self.config)

    def plan(self) -> DayPlan:
        """The day's plan: the calendar forecast over the site's groups, updated online by the
        engine, exactly as the twin and evaluation build it (``twin.closed_loop.day_plan``);
        the ``day_started`` record's declared day type is not trusted as the plan."""
        assert self.day_start is not None
        day = "" if self.day_event_id is None else day_key(self.day_start, self.day_event_id)
        if self.plan_for is not None:
            return self.plan_for(self.day_start.date(), day)
        assert self.day_type_group is not None  # admitted only with a known group (no forecast)
        return DayPlan(expected_share=self.day_shares(self.day_type_group), day=day)

    def knows_group(self, group: int | None) -> bool:
        """Whether ``group`` (a ``day_started`` hint) is one of the site's day-type groups."""
        if group is None:
            return False
        try:
            self.day_shares(group)
        except IndexError:
            return False
        return True

    def tracker_shares(self) -> FloatArray:
        """Expected shares the tracker carries for the open day: the hinted group's when the
        site knows it, else the plan's forecast. The engines replace them with their own online
        plan, so the hint never changes a decision (``DayStarted.day_type_group``)."""
        if self.day_type_group is not None:
            return self.day_shares(self.day_type_group)
        return self.plan().expected_share

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
        cached = self._interval_start
        if cached is not None and cached[0] == self.day_start and cached[1] == index:
            return cached[2]  # every floor record asks for the open interval's end
        start = self.day_start + timedelta(minutes=self.interval_minutes * index)
        self._interval_start = (self.day_start, index, start)
        return start

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
        if data.get("day_start") is None:
            return
        group = data.get("day_type_group")
        self.day_start = datetime.fromisoformat(str(data["day_start"]))
        self.day_type_group = None if group is None else int(group)
        event_id = data.get("day_event_id")
        self.day_event_id = None if event_id is None else str(event_id)
        shares = self.tracker_shares()
        self.tracker = SiteTracker.from_dict(self.config, dict(data["tracker"]), shares)
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
            (str(topic), decode(str(value).encode("utf-8"), BY_NAME[str(topic)]))
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


__all__ = ["SiteRuntime"]
