"""Admission: whether a decoded event may touch a site's state (``contracts/limits.py``).

A schema-valid record can still be implausible for the site-day it claims to belong to: a time
years away, an interval the day does not have, the same package inducted twice. Each check here
returns the one-line reason the worker dead-letters with, or ``None``; nothing here changes
state, so a rejected record leaves the site exactly as it was.

Duplicates are found with a :class:`SeenWindow`: 64-bit hashes of each floor record's identity
over the open and the previous interval. Older records cannot be duplicates that matter: their
event times are outside the skew window and are rejected for that already. The window is part
of the persisted site state, so a restarted worker rejects exactly what the old one would have.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from hashlib import blake2b
from typing import Any

import numpy as np

from contracts.events import (
    ChuteStateChanged,
    DayStarted,
    Envelope,
    IntervalClosed,
    PackageInducted,
    PackageRecirculated,
    PackageSorted,
)
from contracts.limits import InputLimits


def record_identity(event: Envelope) -> bytes | None:
    """What makes a floor record unique: (package, attempt) for inductions and
    recirculations, the package for sorting, the event id for chute events. (Exact types, not
    isinstance: the contract's event models are final, and the worker asks once a record.)"""
    if type(event) is PackageInducted:
        return f"i|{event.package_id}|{event.attempt}".encode()
    if type(event) is PackageSorted:
        return f"s|{event.package_id}".encode()
    if type(event) is PackageRecirculated:
        return f"r|{event.package_id}|{event.attempt}".encode()
    if type(event) is ChuteStateChanged:
        return f"c|{event.event_id}".encode()
    return None


def _pack(values: set[int]) -> str:
    return base64.b64encode(np.array(sorted(values), dtype=np.uint64).tobytes()).decode("ascii")


def _unpack(text: str) -> set[int]:
    return set(np.frombuffer(base64.b64decode(text), dtype=np.uint64).tolist())


@dataclass
class SeenWindow:
    """Record identities of the open interval, the next one (records kept apart until the open
    one closes) and the ``depth`` intervals before: as far back as the time window admits a
    record (``depth = 1 + ceil(skew / interval)``), so no admissible copy goes unnoticed."""

    depth: int = 2
    current: set[int] = field(default_factory=set)
    upcoming: set[int] = field(default_factory=set)
    history: list[set[int]] = field(default_factory=list)
    """Closed intervals, most recent first, at most ``depth``."""
    _packed: list[str] = field(default_factory=list, repr=False)
    """``history`` as :meth:`to_dict` writes it: packed once at the close, not per snapshot."""

    @staticmethod
    def depth_for(skew_s: float, interval_s: float) -> int:
        return 1 + max(1, math.ceil(skew_s / interval_s))

    def check_and_add(self, event: Envelope, upcoming: bool = False) -> bool:
        """True if ``event`` is new (and remember it, with the next interval's records if
        ``upcoming``); False for a duplicate."""
        identity = record_identity(event)
        if identity is None:
            return True
        # 64 bits of blake2b: stable across processes (the window is persisted)
        key = int.from_bytes(blake2b(identity, digest_size=8).digest(), "little")
        if key in self.current or key in self.upcoming:
            return False
        for closed in self.history:
            if key in closed:
                return False
        (self.upcoming if upcoming else self.current).add(key)
        return True

    def roll(self) -> None:
        """The open interval closed: it joins the history, the next one opens."""
        self.history = [self.current, *self.history][: self.depth]
        self._packed = [_pack(self.current), *self._packed][: self.depth]
        self.current, self.upcoming = self.upcoming, set()

    def clear(self) -> None:
        self.current, self.upcoming, self.history, self._packed = set(), set(), [], []

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON (8 bytes per record, base64): ~100 kB per busy large-site interval."""
        return {
            "depth": self.depth,
            "current": _pack(self.current),
            "upcoming": _pack(self.upcoming),
            "history": list(self._packed),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, depth: int = 2) -> SeenWindow:
        """The window of a snapshot, at the ``depth`` this worker's skew needs."""
        if not data:
            return cls(depth)
        packed = [str(h) for h in data.get("history", [])][:depth]
        return cls(
            depth,
            _unpack(str(data["current"])),
            _unpack(str(data.get("upcoming", ""))),
            [_unpack(h) for h in packed],
            packed,
        )


@dataclass(frozen=True)
class SiteCalendar:
    """The open interval and day of one site, as far as admission needs them. The bounds are
    computed once per calendar: the worker keeps one per open interval and checks every
    floor record against it."""

    day_start: datetime
    interval: timedelta
    n_intervals: int
    open_index: int

    def interval_start(self, index: int) -> datetime:
        return self.day_start + self.interval * index

    def admits(self, t: datetime, skew_s: float) -> bool:
        """Whether :func:`check_time` passes ``t`` (one comparison pair instead of two, with
        bounds made once per calendar and skew)."""
        low, high = self._time_bounds(skew_s)
        return low <= t <= high

    def _time_bounds(self, skew_s: float) -> tuple[datetime, datetime]:
        cached: tuple[float, tuple[datetime, datetime]] | None = self.__dict__.get("_bounds")
        if cached is not None and cached[0] == skew_s:
            return cached[1]
        skew = timedelta(seconds=skew_s)
        _, start, end = self.window
        bounds = (
            max(self.day_start - skew, start - skew),
            min(self.day_end + skew, end + skew),
        )
        self.__dict__["_bounds"] = (skew_s, bounds)  # frozen: cached like a cached_property
        return bounds

    @cached_property
    def day_end(self) -> datetime:
        return self.interval_start(self.n_intervals)

    @cached_property
    def window(self) -> tuple[int, datetime, datetime]:
        """(open interval, its start, the end of the next): where a record may lie (± skew);
        the next interval counts too, because a restarted worker reads the records of the
        interval its predecessor already allocated before the close it acts on again."""
        open_index = min(self.open_index, self.n_intervals - 1)
        return open_index, self.interval_start(open_index), self.interval_start(open_index + 2)


def check_time(event: Envelope, calendar: SiteCalendar, limits: InputLimits) -> str | None:
    """Within the day, and from the skew before the open interval to the skew after the next
    one, or why not."""
    t = event.event_time
    if calendar.admits(t, limits.event_time_skew_s):
        return None
    skew = timedelta(seconds=limits.event_time_skew_s)
    day_end = calendar.day_end
    if not calendar.day_start - skew <= t <= day_end + skew:
        return (
            f"implausible_time: event_time {t.isoformat()} outside the site's day "
            f"{calendar.day_start.isoformat()}..{day_end.isoformat()}"
        )
    open_index, start, end = calendar.window
    if not start - skew <= t <= end + skew:
        return (
            f"implausible_time: event_time {t.isoformat()} more than "
            f"{limits.event_time_skew_s:g} s outside the open interval {open_index} and the "
            f"next ({start.isoformat()}..{end.isoformat()})"
        )
    return None


def check_floor_event(
    event: Envelope,
    calendar: SiteCalendar,
    limits: InputLimits,
    *,
    max_attempts: int,
    induction_stations: int,
) -> str | None:
    """Field bounds of the site and the time window for an induction, sorting,
    recirculation or chute event."""
    # a pydantic model's field values live in its __dict__ (extra fields are forbidden): one
    # lookup, where getattr on a type without the field takes pydantic's ~8 us error path
    attempt = event.__dict__.get("attempt")
    if attempt is not None and attempt > max_attempts:
        return f"implausible_field: attempt {attempt} > the site's {max_attempts}"
    if type(event) is PackageInducted and event.station >= induction_stations:
        return (
            f"implausible_field: station {event.station} but the site has "
            f"{induction_stations} induction stations"
        )
    return check_time(event, calendar, limits)


def check_interval_closed(
    event: IntervalClosed,
    calendar: SiteCalendar,
    limits: InputLimits,
    floor_topics: frozenset[str],
) -> str | None:
    """An interval of the day, with the site's own interval times, not already closed."""
    k = event.interval_index
    if k >= calendar.n_intervals:
        return (
            f"implausible_field: interval_index {k} outside the day (0..{calendar.n_intervals - 1})"
        )
    if k < calendar.open_index:
        return f"duplicate: interval {k} is already closed (open: {calendar.open_index})"
    if k > calendar.open_index + 1:
        return (
            f"implausible_field: interval_index {k} is more than one interval ahead of the open "
            f"interval {calendar.open_index}"
        )
    if event.interval_start != calendar.interval_start(
        k
    ) or event.interval_end != calendar.interval_start(k + 1):
        return f"implausible_field: interval {k}'s start/end do not match the site's schedule"
    if event.events_in_interval is not None:
        unknown = sorted(set(event.events_in_interval) - floor_topics)
        if unknown:
            return f"implausible_field: events_in_interval names {unknown[0]!r}, not a floor topic"
    return check_time(event, calendar, limits)


DAYS_REMEMBERED = 64
"""``day_started`` ids a site remembers: a copy of any of them is a replayed old record."""


def check_day_started(event: DayStarted, days_seen: list[str], day_length: timedelta) -> str | None:
    """A new day, not a repeated ``day_started`` record.

    Days may come in any order (historical days are replayed out of order on purpose), so a
    day's date says nothing; its record's id does: an id seen before (the open day's or one of
    the last :data:`DAYS_REMEMBERED`) is a duplicate, and restarting that day from it would
    wipe the state of the day under way.
    """
    if event.event_id in days_seen:
        return f"duplicate: day_started {event.event_id[:128]!r} was already applied"
    if event.event_time > event.day_start + day_length:
        return "implausible_time: day_started sent after its day ended"
    return None


__all__ = [
    "SeenWindow",
    "SiteCalendar",
    "check_day_started",
    "check_floor_event",
    "check_interval_closed",
    "check_time",
    "record_identity",
]
