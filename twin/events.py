"""Package-level contract events (:mod:`contracts.events`) from the twin's count arrays.

Separate from :mod:`twin.sim` because it is a different job on a different path: the twin
counts packages per destination and attempt (the fast path training and evaluation run), while
this module names individual packages and chutes for the event stream (an optional, slow side
path for small sites, replay and the stream tests). The twin tells :class:`EventEmitter` what
happened through a few hooks and hands it read-only views of its chute state; nothing here
feeds back into the twin, so its counts and random draws are the same with and without events.

An ``emit`` that also has ``encoded`` (:class:`EncodedEmit`) gets the three high-volume
package events as the codec's bytes, built from cached text without pydantic objects (issue
22: a replay's driver spent most of its CPU building and encoding ~0.7M event objects a large
day, on the 2 cores it shares with the worker and the broker). The bytes are those of
``contracts.codec.encode`` of the objects, which ``tests/twin/test_events.py`` proves.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pydantic_core
from pydantic import ConfigDict, TypeAdapter

from contracts.events import (
    ChuteState,
    ChuteStateChanged,
    Envelope,
    Id,
    IntervalClosed,
    PackageInducted,
    PackageRecirculated,
    PackageSorted,
    RecirculationReason,
)
from contracts.limits import MAX_ATTEMPT, MAX_STATION
from decision.state import IDLE
from floor.scenario import Scenario
from twin.day import DayDemand

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class ChuteClocks(NamedTuple):
    """The twin's per-chute state ``[C]`` at the moment of a hook call (views, read only)."""

    owner: IntArray
    """Destination index or ``IDLE``."""
    out_until: IntArray
    """Tick a failed chute is back in service."""
    swap_until: IntArray
    """Tick a container swap ends."""
    move_until: IntArray
    """Tick a relabelling (move) ends."""
    open_from: IntArray
    """Tick the chute can eject again (the latest of the three above)."""


@runtime_checkable
class EncodedEmit(Protocol):
    """An ``emit`` that takes the package events as bytes: the fast path (module docstring)."""

    def __call__(self, event: Envelope) -> None:
        """The other events (chute state, interval closed), as objects."""

    def encoded(self, event_type: str, time: datetime, value: bytes) -> None:
        """A ``package_inducted``, ``package_sorted`` or ``package_recirculated`` record:
        ``value`` is ``contracts.codec.encode`` of the event, ``time`` its ``event_time``."""


_ID: TypeAdapter[str] = TypeAdapter(Id, config=ConfigDict(strict=True))

_MAX_ID = 128
"""``contracts.events.Id``'s ``max_length``."""
_MAX_SEQ_DIGITS = 20
"""Room an event id's sequence number needs (any int64)."""


def _wire_text(text: str) -> str:
    """``text`` as it stands between the quotes of a JSON string in the codec's output; an
    id the contract refuses raises its ``ValidationError``, as building the event would."""
    plain = 0 < len(text) <= _MAX_ID and text.isascii() and text.isprintable()
    if plain and '"' not in text and "\\" not in text:
        return text
    _ID.validate_python(text)
    return pydantic_core.to_json(text)[1:-1].decode()


def _wire_text_or_none(text: str) -> str | None:
    try:
        return _wire_text(text)
    except ValueError:
        return None


def _wire_time(time: datetime) -> str:
    """An ``event_time`` as the codec writes it (pydantic's own serializer: ``Z``, and
    microseconds only when there are any)."""
    return pydantic_core.to_json(time)[1:-1].decode()


class EventEmitter:
    """Package-level contract events, driven by the twin's count arrays.

    Package ids flow FIFO per (attempt, destination) through two queues: on the drive
    (travelling to the chute field) and recirculating (loop plus re-induction queue). The
    twin decides how many packages move at each step; this class only decides which ones,
    oldest first, so the counts are the twin's by construction.

    With an :class:`EncodedEmit`, the package events go out as bytes and the queues hold the
    ids' wire text (:func:`_wire_text`). The fast path is off where it could differ from the
    objects (a name the contract refuses, a non-UTC day start): the events are then objects.
    """

    def __init__(
        self, scenario: Scenario, demand: DayDemand, emit: Callable[[Envelope], None]
    ) -> None:
        s = scenario
        self._scenario = scenario
        self._day_start = demand.day_start
        self._emit_fn = emit
        self._site = s.site_id
        self._seq = 0
        # unique per site and day (contracts: event ids never repeat across days)
        self._id_prefix = f"{self._site}-{demand.day_start.date().isoformat()}"
        self._station = 0
        packages = demand.package_list()
        self._packages = packages
        self._tick_edges = np.searchsorted(packages.tick, np.arange(s.n_ticks + 1))
        n_a, n_d = s.max_attempts, s.n_destinations
        self._boundary_emitted = -1
        """Tick whose chute transitions ``interval_closed`` emitted ahead of the tick."""
        self._on_drive: list[list[deque[str]]] = [[deque() for _ in range(n_d)] for _ in range(n_a)]
        self._recirculating: list[list[deque[str]]] = [
            [deque() for _ in range(n_d)] for _ in range(n_a)
        ]
        self._encoded: Callable[[str, datetime, bytes], None] | None = None
        if isinstance(emit, EncodedEmit):
            self._encoded = self._wire_cache(emit.encoded)

    def _wire_cache(
        self, encoded: Callable[[str, datetime, bytes], None]
    ) -> Callable[[str, datetime, bytes], None] | None:
        """Text the fast path repeats, encoded once; None (objects) where it could differ."""
        s = self._scenario
        texts = [_wire_text_or_none(name) for name in (self._id_prefix, self._site)]
        destinations = [_wire_text_or_none(name) for name in s.destinations]
        chutes = [_wire_text_or_none(name) for name in s.chute_ids]
        if (
            None in texts
            or None in destinations
            or None in chutes
            or self._day_start.utcoffset() != timedelta(0)
            or len(self._id_prefix) + 1 + _MAX_SEQ_DIGITS > _MAX_ID
            or s.induction_stations - 1 > MAX_STATION
            or s.max_attempts > MAX_ATTEMPT
        ):
            return None
        prefix, site = texts
        self._head = f'{{"event_id":"{prefix}-'
        self._after_time = {
            kind: f'","site_id":"{site}","event_type":"{kind}","schema_version":1,"package_id":"'
            for kind in ("package_inducted", "package_sorted", "package_recirculated")
        }
        self._destination_text = [f'","destination":"{name}"' for name in destinations]
        self._chute_text = [f',"chute_id":"{name}"' for name in chutes]
        self._tick_times: dict[int, tuple[datetime, str]] = {}
        return encoded

    def _tick_time(self, t: int) -> tuple[datetime, str]:
        """Start of tick ``t`` and its wire text (cached: every package event of a tick after
        the first inductions has one of two times)."""
        cached = self._tick_times.get(t)
        if cached is None:
            time = self._tick_start(t)
            cached = self._tick_times[t] = (time, _wire_time(time))
        return cached

    # ---- helpers

    def _time(self, seconds: float) -> datetime:
        return self._day_start + timedelta(seconds=seconds)

    def _tick_start(self, t: int) -> datetime:
        return self._time(t * self._scenario.tick_seconds)

    def _tick_end(self, t: int) -> datetime:
        return self._time((t + 1) * self._scenario.tick_seconds)

    def _send(self, event_cls: type[Envelope], time: datetime, **fields: Any) -> None:
        event = event_cls(
            event_id=f"{self._id_prefix}-{self._seq}",
            event_time=time,
            site_id=self._site,
            **fields,
        )
        self._seq += 1
        self._emit_fn(event)

    def _chute_event(self, time: datetime, chute: int, state: ChuteState, owner: IntArray) -> None:
        s = self._scenario
        destination = int(owner[chute])
        self._send(
            ChuteStateChanged,
            time,
            chute_id=s.chute_ids[chute],
            state=state,
            destination=s.destinations[destination] if destination != IDLE else None,
        )

    def _next_station(self) -> int:
        station = self._station
        self._station = (station + 1) % self._scenario.induction_stations
        return station

    # ---- hooks called by the twin

    def chutes_failed(self, t: int, chutes: IntArray, clocks: ChuteClocks) -> None:
        time = self._tick_start(t)
        for chute in chutes.tolist():
            self._chute_event(time, chute, "out_of_service", clocks.owner)

    def chute_transitions(self, t: int, clocks: ChuteClocks) -> None:
        """Chutes that become usable again at ``t`` (repair, swap or move finished).

        A move has no start event: the allocation event already says the chute changed
        owner, and ``move_seconds`` says for how long it is closed. ``open`` marks the end of
        the move when nothing else (swap, repair) still keeps the chute closed.

        Transitions at the first tick of an interval were already emitted by
        :meth:`interval_closed` (see there), so they are skipped here.
        """
        if t == 0 or t == self._boundary_emitted:
            return
        self._transitions(t, clocks)

    def _transitions(self, t: int, clocks: ChuteClocks) -> None:
        time = self._tick_start(t)
        for chute in np.flatnonzero(clocks.out_until == t).tolist():
            self._chute_event(time, chute, "back_in_service", clocks.owner)
        for chute in np.flatnonzero(clocks.swap_until == t).tolist():
            self._chute_event(time, chute, "swap_finished", clocks.owner)
        for chute in np.flatnonzero((clocks.move_until == t) & (clocks.open_from <= t)).tolist():
            self._chute_event(time, chute, "open", clocks.owner)

    def chutes_full(self, t: int, chutes: IntArray, clocks: ChuteClocks) -> None:
        time = self._tick_end(t)
        for chute in chutes.tolist():
            self._chute_event(time, chute, "full", clocks.owner)
            self._chute_event(time, chute, "swap_started", clocks.owner)

    def first_inductions(self, t: int) -> None:
        lo, hi = int(self._tick_edges[t]), int(self._tick_edges[t + 1])
        if self._encoded is not None:
            self._first_inductions_encoded(self._encoded, lo, hi)
            return
        s = self._scenario
        packages = self._packages
        for index in range(lo, hi):
            destination = int(packages.destination[index])
            package_id = packages.package_id[index]
            self._send(
                PackageInducted,
                self._time(float(packages.offset_seconds[index])),
                package_id=package_id,
                destination=s.destinations[destination],
                station=self._next_station(),
                attempt=1,
            )
            self._on_drive[0][destination].append(package_id)

    def _first_inductions_encoded(
        self, encoded: Callable[[str, datetime, bytes], None], lo: int, hi: int
    ) -> None:
        packages = self._packages
        head, seq, station = self._head, self._seq, self._station
        after_time = self._after_time["package_inducted"]
        destination_text = self._destination_text
        n_stations = self._scenario.induction_stations
        on_drive = self._on_drive[0]
        for destination, offset, package_id in zip(
            packages.destination[lo:hi].tolist(),
            packages.offset_seconds[lo:hi].tolist(),
            packages.package_id[lo:hi],
            strict=True,
        ):
            time = self._time(offset)
            wire_id = _wire_text(package_id)
            value = (
                f'{head}{seq}","event_time":"{_wire_time(time)}{after_time}{wire_id}'
                f'{destination_text[destination]},"station":{station},"attempt":1}}'
            )
            seq += 1
            station = 0 if station + 1 == n_stations else station + 1
            encoded("package_inducted", time, value.encode())
            on_drive[destination].append(wire_id)
        self._seq, self._station = seq, station

    def reinductions(self, t: int, taken: IntArray) -> None:
        if self._encoded is not None:
            self._reinductions_encoded(self._encoded, t, taken)
            return
        s = self._scenario
        time = self._tick_start(t)
        for attempt, destination in zip(*np.nonzero(taken), strict=True):
            source = self._recirculating[attempt][destination]
            target = self._on_drive[attempt][destination]
            for _ in range(int(taken[attempt, destination])):
                package_id = source.popleft()
                self._send(
                    PackageInducted,
                    time,
                    package_id=package_id,
                    destination=s.destinations[destination],
                    station=self._next_station(),
                    attempt=int(attempt) + 1,
                )
                target.append(package_id)

    def _reinductions_encoded(
        self, encoded: Callable[[str, datetime, bytes], None], t: int, taken: IntArray
    ) -> None:
        time, time_text = self._tick_time(t)
        head, seq, station = self._head, self._seq, self._station
        before_id = f'","event_time":"{time_text}{self._after_time["package_inducted"]}'
        n_stations = self._scenario.induction_stations
        for attempt, destination in zip(*np.nonzero(taken), strict=True):
            source = self._recirculating[attempt][destination]
            target = self._on_drive[attempt][destination]
            after_id = self._destination_text[destination]
            last = f',"attempt":{int(attempt) + 1}}}'
            for _ in range(int(taken[attempt, destination])):
                wire_id = source.popleft()
                value = f'{head}{seq}{before_id}{wire_id}{after_id},"station":{station}{last}'
                seq += 1
                station = 0 if station + 1 == n_stations else station + 1
                encoded("package_inducted", time, value.encode())
                target.append(wire_id)
        self._seq, self._station = seq, station

    def chute_field(
        self,
        t: int,
        arriving: IntArray,
        recirculated: IntArray | None,
        reason: Sequence[RecirculationReason] | None,
        sorted_d: IntArray,
        assigned: FloatArray,
        clocks: ChuteClocks,
    ) -> None:
        """Sorted packages first (oldest first), then the recirculated ones.

        ``reason`` is the ``[D]`` recirculation reason of each destination this tick.
        """
        s = self._scenario
        n_a = arriving.shape[0]
        chutes = self._chute_slots(sorted_d, assigned, clocks.owner)
        if self._encoded is not None:
            self._chute_field_encoded(self._encoded, t, arriving, recirculated, reason, chutes)
            return
        time = self._tick_end(t)
        for attempt, destination in zip(*np.nonzero(arriving), strict=True):
            queue = self._on_drive[attempt][destination]
            n_back = 0 if recirculated is None else int(recirculated[attempt, destination])
            n_sorted = int(arriving[attempt, destination]) - n_back
            for _ in range(n_sorted):
                self._send(
                    PackageSorted,
                    time,
                    package_id=queue.popleft(),
                    destination=s.destinations[destination],
                    chute_id=s.chute_ids[chutes[destination].popleft()],
                    attempt=int(attempt) + 1,
                )
            for _ in range(n_back):
                assert reason is not None
                package_id = queue.popleft()
                self._send(
                    PackageRecirculated,
                    time,
                    package_id=package_id,
                    destination=s.destinations[destination],
                    attempt=int(attempt) + 1,
                    reason=reason[int(destination)],
                    to_exception=bool(attempt + 1 >= n_a),
                )
                if attempt + 1 < n_a:
                    self._recirculating[attempt + 1][destination].append(package_id)

    def _chute_field_encoded(
        self,
        encoded: Callable[[str, datetime, bytes], None],
        t: int,
        arriving: IntArray,
        recirculated: IntArray | None,
        reason: Sequence[RecirculationReason] | None,
        chutes: dict[int, deque[int]],
    ) -> None:
        time, time_text = self._tick_time(t + 1)
        head, seq = self._head, self._seq
        sorted_before_id = f'","event_time":"{time_text}{self._after_time["package_sorted"]}'
        back_before_id = f'","event_time":"{time_text}{self._after_time["package_recirculated"]}'
        chute_text = self._chute_text
        n_a = arriving.shape[0]
        for attempt, destination in zip(*np.nonzero(arriving), strict=True):
            queue = self._on_drive[attempt][destination]
            n_back = 0 if recirculated is None else int(recirculated[attempt, destination])
            n_sorted = int(arriving[attempt, destination]) - n_back
            after_id = self._destination_text[destination]
            if n_sorted:
                slots = chutes[destination]
                last = f',"attempt":{int(attempt) + 1}}}'
                for _ in range(n_sorted):
                    value = (
                        f"{head}{seq}{sorted_before_id}{queue.popleft()}{after_id}"
                        f"{chute_text[slots.popleft()]}{last}"
                    )
                    seq += 1
                    encoded("package_sorted", time, value.encode())
            if n_back:
                assert reason is not None
                to_exception = attempt + 1 >= n_a
                last = (
                    f',"attempt":{int(attempt) + 1},"reason":"{reason[int(destination)]}",'
                    f'"to_exception":{"true" if to_exception else "false"}}}'
                )
                again = None if to_exception else self._recirculating[attempt + 1][destination]
                for _ in range(n_back):
                    wire_id = queue.popleft()
                    value = f"{head}{seq}{back_before_id}{wire_id}{after_id}{last}"
                    seq += 1
                    encoded("package_recirculated", time, value.encode())
                    if again is not None:
                        again.append(wire_id)
        self._seq = seq

    @staticmethod
    def _chute_slots(
        sorted_d: IntArray, assigned: FloatArray, owner: IntArray
    ) -> dict[int, deque[int]]:
        """Chute of each sorted package: whole packages per chute by largest remainder of the
        twin's nearest-first spread, so the event stream matches the fill levels closely."""
        slots: dict[int, deque[int]] = {}
        for destination in np.flatnonzero(sorted_d).tolist():
            chutes = np.flatnonzero((owner == destination) & (assigned > 0))
            weights = assigned[chutes] / assigned[chutes].sum() * int(sorted_d[destination])
            counts = np.floor(weights).astype(np.int64)
            short = int(sorted_d[destination]) - int(counts.sum())
            if short:
                counts[np.argsort(-(weights - counts), kind="stable")[:short]] += 1
            slots[destination] = deque(np.repeat(chutes, counts).tolist())
        return slots

    def interval_closed(self, interval_index: int, clocks: ChuteClocks) -> None:
        """Close the interval: first the chute transitions due at the boundary tick, then
        ``interval_closed``.

        ``site_state()`` at the boundary counts a chute whose swap, repair or move ends
        exactly at the boundary tick as ready, but the twin only simulates that tick (and
        would emit its transitions) after the next allocation. A consumer that builds its
        ``SiteState`` from events (``decision.tracker``) would then see the chute closed when
        it decides. Emitting those transitions before ``interval_closed`` (with the boundary
        as their time) gives the event stream exactly the state the decision is made on.
        """
        s = self._scenario
        start = s.interval_start(interval_index, self._day_start)
        end = s.interval_start(interval_index + 1, self._day_start)
        if interval_index + 1 < s.n_intervals:
            boundary = (interval_index + 1) * s.ticks_per_interval
            self._transitions(boundary, clocks)
            self._boundary_emitted = boundary
        self._send(
            IntervalClosed,
            end,
            interval_index=interval_index,
            interval_start=start,
            interval_end=end,
        )


__all__ = ["ChuteClocks", "EventEmitter"]
