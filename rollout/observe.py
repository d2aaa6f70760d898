"""One site-day as Kafka holds it: the floor's events, the served and shadow decisions, routes.

The day is the one a ``day_started`` record opened (the latest, or the one ``--day`` names by
date or day key); its records are the site's partition of each topic from that record's Kafka
time on, up to the next day of the site. The floor's own KPIs are counted from its events,
interval by interval, so the report can put them beside the counterfactual twin's.
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
from stream.topic_reader import Record, read_to_end, site_partition

IntArray = npt.NDArray[np.int64]
MARGIN_MS = 60_000
"""Records of the day may be written a little before its ``day_started`` (a floor clock
ahead of the replay's); events are kept by their own time, within the day."""


class DayNotFound(ChuteflowError):
    """No ``day_started`` for the site (and day) on the intervals topic."""


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
    day_type_group: int
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


def read_site_day(
    client: str | KafkaClientConfig,
    scenario: Scenario,
    day: str | None = None,
    *,
    timeout_s: float = 60.0,
) -> SiteDay:
    """The site-day ``day`` names (a date ``YYYY-MM-DD`` or a day key), default the latest."""
    site_id = scenario.site_id
    partition = [site_partition(site_id)]
    key = message_key(site_id)
    starts: list[tuple[Record, DayStarted]] = []
    closes: list[tuple[Record, IntervalClosed]] = []
    for record, event in _decoded(
        read_to_end(client, [INTERVALS.name], partitions=partition, timeout_s=timeout_s)
    ):
        if record.key != key or event.site_id != site_id:
            continue
        if isinstance(event, DayStarted):
            starts.append((record, event))
        elif isinstance(event, IntervalClosed):
            closes.append((record, event))
    chosen = [
        (r, e)
        for r, e in starts
        if day is None or e.day_key() == day or e.day_key().startswith(day)
    ]
    if not chosen:
        which = f"day {day}" if day else "any day"
        raise DayNotFound(f"site {site_id}: no day_started for {which} on {INTERVALS.name}")
    start_record, started = chosen[-1]
    later = [r.timestamp_ms for r, _ in starts if r.offset > start_record.offset]
    until_ms = min(later) if later else None
    day_key = started.day_key()
    interval = timedelta(minutes=scenario.interval_minutes)
    day_end = started.day_start + interval * scenario.n_intervals

    def in_day(record: Record) -> bool:
        return until_ms is None or record.timestamp_ms < until_ms

    closed = [
        e.interval_index
        for r, e in closes
        if r.offset > start_record.offset
        and in_day(r)
        and started.day_start <= e.interval_start < day_end
    ]
    since = start_record.timestamp_ms - MARGIN_MS
    records = read_to_end(
        client,
        [INDUCTIONS.name, SORTATION.name, CHUTE_STATE.name, ALLOCATIONS.name, SHADOW.name],
        partitions=partition,
        since_ms=since,
        timeout_s=timeout_s,
    )
    floor_events: list[Envelope] = []
    allocations: dict[int, AllocationDecided] = {}
    shadow: dict[str, dict[int, AllocationDecided]] = {}
    prefix = f"{site_id}/{day_key}/"
    for record, event in _decoded(records):
        if record.key != key or event.site_id != site_id or not in_day(record):
            continue
        if isinstance(event, AllocationDecided):
            if not event.decision_id.startswith(prefix):
                continue
            if record.topic == SHADOW.name:
                label = event.decision_id.rsplit("/", 1)[-1]
                shadow.setdefault(label, {}).setdefault(event.interval_index, event)
            else:
                allocations.setdefault(event.interval_index, event)
        elif started.day_start <= event.event_time <= day_end:
            # the day's last sortings end exactly at its end (the twin counts them in the day)
            floor_events.append(event)
    routes = _routes_of_day(client, site_id, since, timeout_s)
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


__all__ = ["DayNotFound", "FloorCounts", "SiteDay", "floor_counts", "policy_of", "read_site_day"]
