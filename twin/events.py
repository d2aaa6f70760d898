"""Package-level contract events (:mod:`contracts.events`) from the twin's count arrays.

Separate from :mod:`twin.sim` because it is a different job on a different path: the twin
counts packages per destination and attempt (the fast path training and evaluation run), while
this module names individual packages and chutes for the event stream (an optional, slow side
path for small sites, replay and the stream tests). The twin tells :class:`EventEmitter` what
happened through a few hooks and hands it read-only views of its chute state; nothing here
feeds back into the twin, so its counts and random draws are the same with and without events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from contracts.events import (
    ChuteState,
    ChuteStateChanged,
    Envelope,
    IntervalClosed,
    PackageInducted,
    PackageRecirculated,
    PackageSorted,
    RecirculationReason,
)
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


class EventEmitter:
    """Package-level contract events, driven by the twin's count arrays.

    Package ids flow FIFO per (attempt, destination) through two queues: on the drive
    (travelling to the chute field) and recirculating (loop plus re-induction queue). The
    twin decides how many packages move at each step; this class only decides which ones,
    oldest first, so the counts are the twin's by construction.
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
        s = self._scenario
        packages = self._packages
        lo, hi = int(self._tick_edges[t]), int(self._tick_edges[t + 1])
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

    def reinductions(self, t: int, taken: IntArray) -> None:
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
        time = self._tick_end(t)
        n_a = arriving.shape[0]
        chutes = self._chute_slots(sorted_d, assigned, clocks.owner)
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
