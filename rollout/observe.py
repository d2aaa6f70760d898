"""One site-day as Kafka holds it: the floor's events, the served and shadow decisions, routes.

A day is a day *run*: the one a ``day_started`` record opened (the latest, or the one
``day_run`` names by its ``day_started`` id or day key, or ``day`` by date when only one run
has that date). Its records are the site's records (by key, on every partition: a producer
with another partitioner may have used any) from that record's Kafka time up to the site's
next ``day_started``; allocations and shadow decisions are the ones whose decision id names
the day run. No time margin: two runs of the same date replayed back to back stay apart. The
floor's own KPIs are counted from its events, interval by interval, so the report can put them
beside the counterfactual twin's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from contracts.codec import DecodeError, decode
from contracts.control import PolicyRef, PolicyRoute
from contracts.events import (
    AllocationDecided,
    DayStarted,
    Envelope,
    IntervalClosed,
    PackageInducted,
    PackageRecirculated,
    PackageSorted,
)
from contracts.topics import (
    ALLOCATIONS,
    CHUTE_STATE,
    INDUCTIONS,
    INTERVALS,
    SHADOW,
    SORTATION,
    message_key,
)
from floor.errors import ChuteflowError
from floor.scenario import Scenario
from stream.clients import KafkaClientConfig
from stream.routing import route_records
from stream.topic_reader import Record, read_to_end

IntArray = npt.NDArray[np.int64]


class DayNotFound(ChuteflowError):
    """No ``day_started`` for the site (and day) on the intervals topic, or a date that names
    several day runs (the message lists them: pass one as ``--day-run``)."""


@dataclass
class FloorCounts:
    """The floor's own counts per interval ``[K]``, from its events."""

    first_inductions: IntArray
    sorted: IntArray
    recirculated: IntArray
    first_recirculations: IntArray
    exceptions: IntArray


@dataclass
class SiteDay:
    """What Kafka holds of one site-day."""

    site_id: str
    day_key: str
    day_start: datetime
    day_type_group: int | None
    """The day_started record's hint (optional in the contract; never the plan)."""
    floor_events: list[Envelope]
    closed_through: int
    """The last interval the floor closed (-1: none yet)."""
    allocations: dict[int, AllocationDecided]
    """Served decisions by interval (the first one, if a redelivery repeated it)."""
    shadow: dict[str, dict[int, AllocationDecided]]
    """Shadow decisions by policy label, then interval."""
    routes: list[PolicyRoute] = field(default_factory=list)
    """The site's control records of the day (and the one in force at its start), in order."""
    floor: FloorCounts | None = None


def policy_of(event: AllocationDecided) -> PolicyRef | None:
    """The routed policy that made ``event`` (None when a fallback replaced a policy whose
    hash the record does not carry)."""
    if event.fallback_reason is not None:
        return None
    try:
        return PolicyRef(name=event.policy_name, sha256=event.policy_sha256)
    except ValueError:
        return None


def _decoded(records: list[Record]) -> list[tuple[Record, Envelope]]:
    out: list[tuple[Record, Envelope]] = []
    for record in records:
        if record.value is None:
            continue
        try:
            out.append((record, decode(record.value)))
        except DecodeError:
            continue  # the worker dead-lettered it; it is not part of the floor's day
    return out


@dataclass(frozen=True)
class DayRunStart:
    """A site's ``day_started`` record and where it lies in Kafka time."""

    started: DayStarted
    timestamp_ms: int
    until_ms: int | None
    """Kafka time of the site's next ``day_started`` (None: the latest day run)."""

    @property
    def day_key(self) -> str:
        return self.started.day_key()

    def holds(self, timestamp_ms: int) -> bool:
        return timestamp_ms >= self.timestamp_ms and (
            self.until_ms is None or timestamp_ms < self.until_ms
        )


def day_runs(
    client: str | KafkaClientConfig, site_id: str, *, timeout_s: float = 60.0
) -> tuple[list[DayRunStart], list[tuple[Record, IntervalClosed]]]:
    """The site's day runs in Kafka-time order (every partition of the intervals topic), and
    its interval closes."""
    key = message_key(site_id)
    starts: dict[str, tuple[Record, DayStarted]] = {}
    closes: list[tuple[Record, IntervalClosed]] = []
    for record, event in _decoded(read_to_end(client, [INTERVALS.name], timeout_s=timeout_s)):
        if record.key != key or event.site_id != site_id:
            continue
        if isinstance(event, DayStarted):
            starts.setdefault(event.event_id, (record, event))  # a redelivery is the same run
        elif isinstance(event, IntervalClosed):
            closes.append((record, event))
    ordered = sorted(
        starts.values(), key=lambda s: (s[0].timestamp_ms, s[0].partition, s[0].offset)
    )
    runs = []
    for index, (record, event) in enumerate(ordered):
        later = ordered[index + 1][0].timestamp_ms if index + 1 < len(ordered) else None
        runs.append(DayRunStart(event, record.timestamp_ms, later))
    return runs, closes


def pick_day_run(
    site_id: str, runs: list[DayRunStart], day: str | None, day_run: str | None
) -> DayRunStart:
    """The day run ``day_run`` names (its ``day_started`` id or day key, or a unique prefix of
    the key), else the one run of date (or day key) ``day``, else the latest."""
    if day_run is not None:
        chosen = [
            r
            for r in runs
            if day_run in (r.started.event_id, r.day_key) or r.day_key.startswith(day_run)
        ]
    elif day is not None:
        chosen = [r for r in runs if r.day_key == day or r.day_key.startswith(day)]
    else:
        chosen = runs[-1:]
    if not chosen:
        which = f"day run {day_run}" if day_run else f"day {day}" if day else "any day"
        raise DayNotFound(f"site {site_id}: no day_started for {which} on {INTERVALS.name}")
    if len(chosen) > 1:
        listed = ", ".join(f"{r.day_key} (day_started {r.started.event_id})" for r in chosen)
        raise DayNotFound(
            f"site {site_id}: {day_run or day} names {len(chosen)} day runs: {listed}; "
            "pass one as --day-run"
        )
    return chosen[0]


def read_site_day(
    client: str | KafkaClientConfig,
    scenario: Scenario,
    day: str | None = None,
    *,
    day_run: str | None = None,
    timeout_s: float = 60.0,
) -> SiteDay:
    """The site-day run :func:`pick_day_run` selects (default the latest)."""
    site_id = scenario.site_id
    key = message_key(site_id)
    runs, closes = day_runs(client, site_id, timeout_s=timeout_s)
    run = pick_day_run(site_id, runs, day, day_run)
    started = run.started
    day_key = run.day_key
    interval = timedelta(minutes=scenario.interval_minutes)
    day_end = started.day_start + interval * scenario.n_intervals
    closed = [
        e.interval_index
        for r, e in closes
        if run.holds(r.timestamp_ms) and started.day_start <= e.interval_start < day_end
    ]
    records = read_to_end(
        client,
        [INDUCTIONS.name, SORTATION.name, CHUTE_STATE.name, ALLOCATIONS.name, SHADOW.name],
        since_ms=run.timestamp_ms,
        timeout_s=timeout_s,
    )
    floor_events: list[Envelope] = []
    allocations: dict[int, AllocationDecided] = {}
    shadow: dict[str, dict[int, AllocationDecided]] = {}
    prefix = f"{site_id}/{day_key}/"
    for record, event in _decoded(records):
        if record.key != key or event.site_id != site_id:
            continue
        if isinstance(event, AllocationDecided):
            if not event.decision_id.startswith(prefix):
                continue
            if record.topic == SHADOW.name:
                label = event.decision_id.rsplit("/", 1)[-1]
                shadow.setdefault(label, {}).setdefault(event.interval_index, event)
            else:
                allocations.setdefault(event.interval_index, event)
        elif run.holds(record.timestamp_ms) and started.day_start <= event.event_time <= day_end:
            # the day's last sortings end exactly at its end (the twin counts them in the day)
            floor_events.append(event)
    routes = _routes_of_day(client, site_id, run.timestamp_ms, timeout_s)
    result = SiteDay(
        site_id=site_id,
        day_key=day_key,
        day_start=started.day_start,
        day_type_group=started.day_type_group,
        floor_events=floor_events,
        closed_through=max(closed, default=-1),
        allocations=allocations,
        shadow=shadow,
        routes=routes,
    )
    result.floor = floor_counts(scenario, result)
    return result


def _routes_of_day(
    client: str | KafkaClientConfig, site_id: str, since_ms: int, timeout_s: float
) -> list[PolicyRoute]:
    """The site's routes, the one in force at ``since_ms`` first."""
    records = route_records(client, site_id, timeout_s=timeout_s)
    before = [route for stamp, route in records if stamp < since_ms][-1:]
    return before + [route for stamp, route in records if stamp >= since_ms]


def floor_counts(scenario: Scenario, day: SiteDay) -> FloorCounts:
    """Per-interval counts of the floor's own events (each package once per attempt)."""
    k = scenario.n_intervals
    seconds = scenario.interval_minutes * 60.0
    counts = {name: np.zeros(k, dtype=np.int64) for name in FloorCounts.__dataclass_fields__}
    seen: set[tuple[str, str, int]] = set()
    for event in day.floor_events:
        # an event at exactly the day's end belongs to its last interval
        index = min(int((event.event_time - day.day_start).total_seconds() // seconds), k - 1)
        if not 0 <= index < k or not isinstance(
            event, PackageInducted | PackageSorted | PackageRecirculated
        ):
            continue
        identity = (event.event_type, event.package_id, event.attempt)
        if identity in seen:
            continue  # a redelivered copy the worker would have dead-lettered
        seen.add(identity)
        if isinstance(event, PackageInducted):
            counts["first_inductions"][index] += event.attempt == 1
        elif isinstance(event, PackageSorted):
            counts["sorted"][index] += 1
        else:
            counts["recirculated"][index] += 1
            counts["first_recirculations"][index] += event.attempt == 1
            counts["exceptions"][index] += event.to_exception
    return FloorCounts(**counts)


__all__ = [
    "DayNotFound",
    "DayRunStart",
    "FloorCounts",
    "SiteDay",
    "day_runs",
    "floor_counts",
    "pick_day_run",
    "policy_of",
    "read_site_day",
]
