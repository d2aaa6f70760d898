"""A site's ``SiteState`` rebuilt from contract events: what the streaming worker decides on.

The twin computes ``SiteState`` from its own arrays; a live worker only sees events. This
module turns the event stream into exactly the same ``SiteState`` at every interval boundary
(tested against ``SortationTwin.site_state()``), so the worker, replay and the in-process loop
decide on the same inputs. It is pure Python/numpy with no Kafka in it: the stream layer
decodes bytes, calls :meth:`SiteTracker.apply` and asks :meth:`SiteTracker.close_interval`.

What each ``SiteState`` field is built from:

- ``arrivals``: ``package_inducted`` with ``attempt == 1`` counted in the open interval,
  shifted into the lag rows when the interval closes.
- ``recirculated``: every ``package_recirculated`` of the interval (exceptions included).
- ``backlog``: ``package_recirculated`` without ``to_exception`` (the package comes back)
  minus ``package_inducted`` with ``attempt > 1`` (it came back).
- ``chute_owner``: the last allocation applied (:meth:`SiteTracker.apply_allocation`).
- ``chute_available``: ``out_of_service`` until ``back_in_service``.
- ``chute_open``: available, not between ``swap_started`` and ``swap_finished``, and not
  moving. A move has no start event (the allocation says the chute changed owner), so the
  move closure is derived from the allocation diff: closed until ``move_seconds`` after the
  start of the interval the allocation is for (rounded to the tick as the twin does). The
  first allocation of a day is the pre-shift setup and moves nothing, as in the twin.

The events arrive in any order within an interval except per chute (one topic, one
partition): the counters are sums and only the chute events need their own order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from contracts.events import (
    AllocationDecided,
    ChuteStateChanged,
    Envelope,
    PackageInducted,
    PackageRecirculated,
    PackageSorted,
)
from decision.state import ARRIVAL_LAGS, IDLE, SiteState

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class UnknownEntityError(ValueError):
    """An event names a site, destination or chute the site's layout does not have."""


class _ScenarioLike(Protocol):
    """The scenario fields the tracker needs (``floor.scenario.Scenario`` has them); a Protocol
    so ``decision`` does not import the twin."""

    @property
    def site_id(self) -> str: ...
    @property
    def chute_ids(self) -> tuple[str, ...]: ...
    @property
    def destinations(self) -> tuple[str, ...]: ...
    @property
    def n_intervals(self) -> int: ...
    @property
    def ticks_per_interval(self) -> int: ...
    @property
    def tick_seconds(self) -> float: ...
    @property
    def move_seconds(self) -> float: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def induction_stations(self) -> int: ...


@dataclass(frozen=True)
class TrackerConfig:
    """Layout and timing of one site, as far as the event-built state needs them."""

    site_id: str
    chute_ids: tuple[str, ...]
    destinations: tuple[str, ...]
    n_intervals: int
    ticks_per_interval: int
    move_ticks: int
    """Ticks a moved chute stays closed; rounded half up like the twin's ``TwinTiming``."""
    max_attempts: int = 1_000
    """Inductions before a package goes to exception: a higher ``attempt`` is implausible."""
    induction_stations: int = 100_000
    """Induction stations of the site: a higher ``station`` is implausible."""

    @classmethod
    def from_scenario(cls, scenario: _ScenarioLike) -> TrackerConfig:
        return cls(
            site_id=scenario.site_id,
            chute_ids=tuple(scenario.chute_ids),
            destinations=tuple(scenario.destinations),
            n_intervals=scenario.n_intervals,
            ticks_per_interval=scenario.ticks_per_interval,
            move_ticks=math.floor(scenario.move_seconds / scenario.tick_seconds + 0.5),
            max_attempts=scenario.max_attempts,
            induction_stations=scenario.induction_stations,
        )


class SiteTracker:
    """Per-destination counters and per-chute state of one site-day, fed one event at a time."""

    def __init__(self, config: TrackerConfig) -> None:
        self.config = config
        self._destination_index = {d: i for i, d in enumerate(config.destinations)}
        self._chute_index = {c: i for i, c in enumerate(config.chute_ids)}
        self.start_day(np.full((config.n_intervals, len(config.destinations)), 0.0))

    def start_day(self, expected_share: FloatArray) -> None:
        """Forget the previous day; ``expected_share`` is the day plan's ``[n_intervals, D]``."""
        n_c, n_d = len(self.config.chute_ids), len(self.config.destinations)
        if expected_share.shape != (self.config.n_intervals, n_d):
            raise ValueError(f"expected_share shape {expected_share.shape}")
        self.expected_share = np.asarray(expected_share, dtype=np.float64)
        self.interval_index = 0
        """The interval whose events are being counted (the next to close)."""
        self.arrival_lags = np.zeros((ARRIVAL_LAGS, n_d), dtype=np.int64)
        self.arrivals = np.zeros(n_d, dtype=np.int64)
        self.recirculated = np.zeros(n_d, dtype=np.int64)
        self.last_recirculated = np.zeros(n_d, dtype=np.int64)
        self.backlog = np.zeros(n_d, dtype=np.int64)
        self.owner = np.full(n_c, IDLE, dtype=np.int64)
        self.owner_set = False
        self.out_of_service = np.zeros(n_c, dtype=np.bool_)
        self.swapping = np.zeros(n_c, dtype=np.bool_)
        self.move_until = np.zeros(n_c, dtype=np.int64)
        self.allocated_through = -1
        """Highest interval index whose allocation was applied (-1: none yet)."""
        self._clear_next()

    def _clear_next(self) -> None:
        n_d = len(self.config.destinations)
        self.next_arrivals = np.zeros(n_d, dtype=np.int64)
        self.next_recirculated = np.zeros(n_d, dtype=np.int64)
        self.next_backlog = np.zeros(n_d, dtype=np.int64)
        self.next_chutes: list[tuple[int, str]] = []
        """Events of the interval after the open one (see :meth:`apply`), applied at its close."""

    # ---------------------------------------------------------------- events

    def destination(self, destination: str) -> int:
        index = self._destination_index.get(destination)
        if index is None:
            raise UnknownEntityError(
                f"unknown destination {destination!r} for site {self.config.site_id!r}"
            )
        return index

    def chute(self, chute_id: str) -> int:
        index = self._chute_index.get(chute_id)
        if index is None:
            raise UnknownEntityError(f"unknown chute {chute_id!r} for site {self.config.site_id!r}")
        return index

    def check(self, event: Envelope) -> None:
        """Raise :class:`UnknownEntityError` if ``event`` names a site, destination or chute
        this site does not have; change nothing."""
        if event.site_id != self.config.site_id:
            raise UnknownEntityError(
                f"event of site {event.site_id!r} given to the tracker of {self.config.site_id!r}"
            )
        fields = event.__dict__  # field values; see admission.check_floor_event
        destination = fields.get("destination")
        if destination is not None:
            self.destination(destination)
        chute_id = fields.get("chute_id")
        if chute_id is not None:
            self.chute(chute_id)

    def apply(self, event: Envelope, next_interval: bool = False) -> None:
        """Count one floor event into the open interval, or with ``next_interval`` into the one
        after it.

        The next interval's events are kept apart until the open one closes: its allocation
        must be decided on the state at its end, without them. A worker that restarts mid-day
        can read them before the open interval's close (the floor moved on under the
        allocation the old worker had already published), and must then decide exactly as the
        old worker did.

        Raises :class:`UnknownEntityError` before changing anything when the event names a
        destination or chute the site does not have (the caller dead-letters it). Interval and
        allocation events are not floor events: the caller handles them.
        """
        if event.site_id != self.config.site_id:
            raise UnknownEntityError(
                f"event of site {event.site_id!r} given to the tracker of {self.config.site_id!r}"
            )
        arrivals, recirculated, backlog = (
            (self.next_arrivals, self.next_recirculated, self.next_backlog)
            if next_interval
            else (self.arrivals, self.recirculated, self.backlog)
        )
        # exact types (mypy narrows them too): the contract's event models are final
        if type(event) is PackageInducted:
            d = self.destination(event.destination)
            if event.attempt == 1:
                arrivals[d] += 1
            else:
                backlog[d] -= 1
        elif type(event) is PackageSorted:
            self.destination(event.destination)
            self.chute(event.chute_id)
        elif type(event) is PackageRecirculated:
            d = self.destination(event.destination)
            recirculated[d] += 1
            if not event.to_exception:
                backlog[d] += 1
        elif isinstance(event, ChuteStateChanged):
            c = self.chute(event.chute_id)
            if event.destination is not None:
                self.destination(event.destination)
            # "full" precedes "swap_started"; "open" ends a move, which the allocation
            # diff already times: neither changes the state the decision sees.
            if next_interval:
                self.next_chutes.append((c, event.state))
            else:
                self._chute_state(c, event.state)
        else:
            raise ValueError(f"{type(event).__name__} is not a floor event")

    def _chute_state(self, c: int, state: str) -> None:
        if state == "out_of_service":
            self.out_of_service[c] = True
        elif state == "back_in_service":
            self.out_of_service[c] = False
        elif state == "swap_started":
            self.swapping[c] = True
        elif state == "swap_finished":
            self.swapping[c] = False

    def apply_many(self, events: list[Envelope]) -> None:
        for event in events:
            self.apply(event)

    def apply_owner(self, owner: IntArray, interval_index: int) -> int:
        """Install the allocation for ``interval_index``; return the chutes it moved."""
        owner = np.asarray(owner, dtype=np.int64)
        moves = 0
        if self.owner_set:
            changed = owner != self.owner
            moves = int(changed.sum())
            start = interval_index * self.config.ticks_per_interval
            self.move_until[changed] = start + self.config.move_ticks
        self.owner_set = True
        self.owner = owner.copy()
        self.allocated_through = max(self.allocated_through, interval_index)
        return moves

    def apply_allocation(self, event: AllocationDecided) -> int:
        """Install an allocation event (chute ids and destinations resolved by name)."""
        owner = np.full(len(self.config.chute_ids), IDLE, dtype=np.int64)
        for chute_id, destination in event.chute_map.items():
            owner[self.chute(chute_id)] = self.destination(destination)
        return self.apply_owner(owner, event.interval_index)

    # ---------------------------------------------------------------- boundaries

    def state(self) -> SiteState:
        """The state at the start of ``interval_index`` (before its allocation is decided)."""
        k = self.interval_index
        t = k * self.config.ticks_per_interval
        available = ~self.out_of_service
        ready = available & ~self.swapping & (self.move_until <= t)
        share_row = min(k, self.config.n_intervals - 1)
        return SiteState(
            interval_index=k,
            n_intervals=self.config.n_intervals,
            chute_owner=self.owner.copy(),
            chute_available=available,
            chute_open=ready,
            arrivals=self.arrival_lags.copy(),
            recirculated=self.last_recirculated.copy(),
            backlog=self.backlog.copy(),
            expected_share=self.expected_share[share_row].copy(),
        )

    def close_interval(self, interval_index: int) -> SiteState:
        """Close ``interval_index`` (it must be the open one); return the next boundary's state."""
        if interval_index != self.interval_index:
            raise ValueError(f"interval {interval_index} is not open ({self.interval_index} is)")
        self.arrival_lags[1:] = self.arrival_lags[:-1]
        self.arrival_lags[0] = self.arrivals
        self.last_recirculated[:] = self.recirculated
        self.arrivals.fill(0)
        self.recirculated.fill(0)
        self.interval_index += 1
        state = self.state()
        # the next interval's events, kept apart until now, open the new interval
        self.arrivals += self.next_arrivals
        self.recirculated += self.next_recirculated
        self.backlog += self.next_backlog
        for c, chute_state in self.next_chutes:
            self._chute_state(c, chute_state)
        self._clear_next()
        return state

    # ---------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready snapshot (lists of ints and bools, never pickle) for a faust table.

        The day plan's ``expected_share`` is left out (``[n_intervals, D]`` floats would make
        every snapshot of a large site ~300 kB): the owner of the snapshot stores how to get
        it again (the worker stores the day-type group) and passes it to :meth:`from_dict`.
        """
        return {
            "site_id": self.config.site_id,
            "interval_index": self.interval_index,
            "arrival_lags": self.arrival_lags.tolist(),
            "arrivals": self.arrivals.tolist(),
            "recirculated": self.recirculated.tolist(),
            "last_recirculated": self.last_recirculated.tolist(),
            "backlog": self.backlog.tolist(),
            "owner": self.owner.tolist(),
            "owner_set": self.owner_set,
            "out_of_service": self.out_of_service.tolist(),
            "swapping": self.swapping.tolist(),
            "move_until": self.move_until.tolist(),
            "allocated_through": self.allocated_through,
            "next_arrivals": self.next_arrivals.tolist(),
            "next_recirculated": self.next_recirculated.tolist(),
            "next_backlog": self.next_backlog.tolist(),
            "next_chutes": [[c, s] for c, s in self.next_chutes],
        }

    @classmethod
    def from_dict(
        cls, config: TrackerConfig, data: dict[str, Any], expected_share: FloatArray
    ) -> SiteTracker:
        """Rebuild a tracker from :meth:`to_dict`; the layout comes from ``config``."""
        if data.get("site_id") != config.site_id:
            raise ValueError(f"snapshot of site {data.get('site_id')!r}, not {config.site_id!r}")
        tracker = cls(config)
        tracker.start_day(expected_share)
        tracker.interval_index = int(data["interval_index"])
        for name in ("arrival_lags", "arrivals", "recirculated", "last_recirculated", "backlog"):
            setattr(tracker, name, np.asarray(data[name], dtype=np.int64))
        tracker.owner = np.asarray(data["owner"], dtype=np.int64)
        tracker.owner_set = bool(data["owner_set"])
        tracker.out_of_service = np.asarray(data["out_of_service"], dtype=np.bool_)
        tracker.swapping = np.asarray(data["swapping"], dtype=np.bool_)
        tracker.move_until = np.asarray(data["move_until"], dtype=np.int64)
        tracker.allocated_through = int(data["allocated_through"])
        n_d = len(config.destinations)
        for name in ("next_arrivals", "next_recirculated", "next_backlog"):
            setattr(tracker, name, np.asarray(data.get(name, [0] * n_d), dtype=np.int64))
        tracker.next_chutes = [(int(c), str(s)) for c, s in data.get("next_chutes", [])]
        return tracker
