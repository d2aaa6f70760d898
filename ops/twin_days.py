"""What the shadow twin needs of each site's current day, kept as the page's follower reads it.

The ops model tells :class:`TwinDays` every event it placed in a site-day
(:data:`ops.model.DayObserver`); this keeps, for the site's latest day only, what
``rollout.shadow.compare`` reads from a :class:`rollout.observe.SiteDay`: the first inductions
and the chute outages (as their raw record values, decoded again only when a comparison runs:
a decoded event costs ~1.3 KB, its JSON ~0.25 KB, so a full large-site day stays near 50 MB
instead of 250), the floor's own counts per interval, the last closed interval, the served
allocations and the first decision of each shadow policy (all ``day_policies`` looks at).

The day's membership rules are the shadow report's (``rollout/observe.py``): floor events
from the day's ``day_started`` record on whose time lies in the day's span, decisions whose
``decision_id`` names the day. Sites whose scenario the page does not know are not kept: the
twin cannot run them.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from contracts.codec import decode
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
from contracts.topics import SHADOW
from floor.scenario import Scenario
from ops.model import DayView, SiteView
from rollout.observe import FloorCounts, SiteDay
from stream.topic_reader import Record

_OUTAGE_STATES = ("out_of_service", "back_in_service")
_COUNTS = ("first_inductions", "sorted", "recirculated", "first_recirculations", "exceptions")


@dataclass
class _Day:
    """One site-day as kept: raw twin inputs, counts, decisions; ``version`` grows with every
    interval close (what makes a new comparison worth running)."""

    day_key: str
    day_start: datetime
    day_type_group: int | None
    started_ms: int
    twin_inputs: list[bytes] = field(default_factory=list)
    counts: dict[str, Counter[int]] = field(
        default_factory=lambda: {name: Counter() for name in _COUNTS}
    )
    closed_through: int = -1
    allocations: dict[int, AllocationDecided] = field(default_factory=dict)
    shadow: dict[str, dict[int, AllocationDecided]] = field(default_factory=dict)


class TwinDays:
    """The current day of every site with a known scenario; fed by :meth:`observe` (an
    :data:`ops.model.DayObserver`), read by :meth:`site_day`. Thread-safe."""

    def __init__(self, scenarios: dict[str, Scenario]) -> None:
        self.scenarios = dict(scenarios)
        self.days: dict[str, _Day] = {}
        self.lock = threading.Lock()

    def observe(self, view: SiteView, day: DayView, record: Record, event: Envelope) -> None:
        scenario = self.scenarios.get(view.site_id)
        if scenario is None or record.value is None:
            return
        with self.lock:
            kept = self.days.get(view.site_id)
            if kept is None or kept.day_key != day.day_key:
                if kept is not None and kept.started_ms > day.started_ms:
                    return  # an event of an older day, read late
                kept = self.days[view.site_id] = _Day(
                    day.day_key, day.day_start, day.day_type_group, day.started_ms
                )
            self._keep(scenario, kept, record, event)

    def _keep(self, scenario: Scenario, day: _Day, record: Record, event: Envelope) -> None:
        assert record.value is not None
        if isinstance(event, DayStarted):
            return
        if isinstance(event, AllocationDecided):
            if record.topic == SHADOW.name:
                label = event.decision_id.rsplit("/", 1)[-1]
                day.shadow.setdefault(label, {}).setdefault(event.interval_index, event)
                if len(day.shadow[label]) > 1:  # day_policies reads the first only
                    del day.shadow[label][max(day.shadow[label])]
            else:
                day.allocations.setdefault(event.interval_index, event)
            return
        interval = timedelta(minutes=scenario.interval_minutes)
        day_end = day.day_start + interval * scenario.n_intervals
        if isinstance(event, IntervalClosed):
            if day.day_start <= event.interval_start < day_end:
                day.closed_through = max(day.closed_through, event.interval_index)
            return
        if not day.day_start <= event.event_time <= day_end:
            return
        index = min(int((event.event_time - day.day_start) // interval), scenario.n_intervals - 1)
        if isinstance(event, PackageInducted):
            if event.attempt == 1:
                day.twin_inputs.append(record.value)
                day.counts["first_inductions"][index] += 1
        elif isinstance(event, ChuteStateChanged):
            if event.state in _OUTAGE_STATES:
                day.twin_inputs.append(record.value)
        elif isinstance(event, PackageSorted):
            day.counts["sorted"][index] += 1
        elif isinstance(event, PackageRecirculated):
            day.counts["recirculated"][index] += 1
            day.counts["first_recirculations"][index] += event.attempt == 1
            day.counts["exceptions"][index] += event.to_exception

    def closed(self) -> dict[str, tuple[str, int]]:
        """Per site: (day key, last closed interval) of its current day."""
        with self.lock:
            return {site: (d.day_key, d.closed_through) for site, d in self.days.items()}

    def site_day(self, site_id: str) -> SiteDay | None:
        """The site's current day as ``rollout.shadow.compare`` takes it (None: no day yet).
        The raw inputs are copied under the lock and decoded outside it."""
        with self.lock:
            day = self.days.get(site_id)
            if day is None:
                return None
            inputs = list(day.twin_inputs)
            allocations = dict(day.allocations)
            shadow = {label: dict(first) for label, first in day.shadow.items()}
            k = self.scenarios[site_id].n_intervals
            floor = FloorCounts(
                **{
                    name: np.array([counter[i] for i in range(k)], dtype=np.int64)
                    for name, counter in day.counts.items()
                }
            )
            key, start, group, closed = (
                day.day_key,
                day.day_start,
                day.day_type_group,
                day.closed_through,
            )
        return SiteDay(
            site_id=site_id,
            day_key=key,
            day_start=start,
            day_type_group=group,
            floor_events=[decode(value) for value in inputs],
            closed_through=closed,
            allocations=allocations,
            shadow=shadow,
            floor=floor,
        )


__all__ = ["TwinDays"]
