"""The vectorized digital twin of one sortation day: packages counted, not simulated one by one.

The floor is a pipeline of integer count arrays indexed by destination ``D`` and by induction
attempt ``A`` (attempt 1 = first induction). Each tick (``tick_seconds``):

1. chutes fail or come back (a pre-drawn geometric clock per chute, so failures cost nothing
   on ticks where none happens and are identical across policies: common random numbers);
2. recirculated packages whose loop time is over join the re-induction queue;
3. the day's first inductions of this tick are inducted as recorded (the day file *is* the
   induction history), then the queue is inducted with the station capacity left over;
4. packages inducted ``travel_seconds`` ago reach the chute field; destination ``d`` ejects
   ``min(arriving, floor(capacity of its open chutes))`` and the rest recirculate with one
   reason for the destination and tick (no chute / none open / over rate);
5. chutes whose container has no room for one more package start a swap.

Only step 5 and the failure step touch individual chutes, and only on the ticks where
something happens. Package-level contract events are an optional, slower side path
(``emit``, :mod:`twin.events`) driven by the same count arrays, so counts cannot differ with
and without it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from contracts.events import Envelope, RecirculationReason
from decision.state import ARRIVAL_LAGS, IDLE, SiteState
from floor.scenario import Scenario
from twin.day import DayDemand
from twin.events import ChuteClocks, EventEmitter
from twin.kpis import DayKPIs

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

REASONS: tuple[RecirculationReason, ...] = (
    "no_chute_allocated",
    "chutes_full_or_swapping",
    "chute_over_rate",
)
"""Order of the rows of ``IntervalResult.recirculated_by_reason``."""
NO_CHUTE, CHUTES_CLOSED, OVER_RATE = 0, 1, 2

_NEVER = 2**62
"""Tick index that never comes (a chute that cannot fail)."""
_EPS = 1e-9
"""Float slack when turning fractional chute capacity into whole packages."""


def _ticks(seconds: float, tick_seconds: float) -> int:
    """Seconds to whole ticks, rounding half up (Python's ``round`` rounds half to even)."""
    return math.floor(seconds / tick_seconds + 0.5)


@dataclass(frozen=True)
class Outage:
    """A chute out of service from ``start_tick`` until ``end_tick`` (exclusive).

    ``end_tick=None``: not back in service yet (out for the rest of the day). Used to replay
    the outages a real floor reported instead of drawing random failures.
    """

    chute: int
    start_tick: int
    end_tick: int | None = None

    def __post_init__(self) -> None:
        if self.chute < 0 or self.start_tick < 0:
            raise ValueError(f"outage chute and start_tick must be >= 0: {self}")
        if self.end_tick is not None and self.end_tick <= self.start_tick:
            raise ValueError(f"outage end_tick must be after start_tick: {self}")


@dataclass(frozen=True)
class TwinTiming:
    """The scenario's physics converted once into ticks and per-tick rates."""

    travel_ticks: int
    reinduction_ticks: int
    """At least 1: a package recirculated in a tick is inducted again the next tick at the
    earliest, which keeps the per-tick order (induct, then eject) free of cycles."""
    swap_ticks: int
    move_ticks: int
    eject_per_tick: float
    """Packages one open chute can eject per tick (service rate)."""
    failure_probability: float
    """Probability that an in-service chute fails in one tick."""
    repair_ticks_mean: float
    station_capacity: IntArray
    """[n_ticks] whole packages the induction stations can induct in each tick; the
    fractional per-tick capacity is accumulated so no capacity is lost to rounding."""

    @classmethod
    def of(cls, scenario: Scenario) -> TwinTiming:
        tick = scenario.tick_seconds
        per_tick = scenario.induction_stations * scenario.station_packages_per_hour * tick / 3600
        edges = np.floor(np.arange(scenario.n_ticks + 1) * per_tick + _EPS).astype(np.int64)
        return cls(
            travel_ticks=_ticks(scenario.travel_seconds, tick),
            reinduction_ticks=max(1, _ticks(scenario.reinduction_seconds, tick)),
            swap_ticks=_ticks(scenario.swap_seconds, tick),
            move_ticks=_ticks(scenario.move_seconds, tick),
            eject_per_tick=scenario.chute_packages_per_minute * tick / 60.0,
            failure_probability=min(1.0, scenario.chute_failures_per_hour * tick / 3600.0),
            repair_ticks_mean=scenario.repair_minutes * 60.0 / tick,
            station_capacity=np.diff(edges),
        )


@dataclass(frozen=True)
class IntervalResult:
    """What happened on the floor during one decision interval; arrays are ``[D]``."""

    interval_index: int
    first_inductions: IntArray
    """Packages inducted for the first time (the day's demand)."""
    reinductions: IntArray
    """Recirculated packages inducted again."""
    sorted: IntArray
    recirculated: IntArray
    """Recirculation events (all reasons, exceptions included)."""
    recirculated_by_reason: IntArray
    """[3, D] recirculation events per reason, rows in ``REASONS`` order."""
    first_recirculations: IntArray
    """Packages recirculated for the first time: the interval's share of
    ``recirculation_amount``."""
    exceptions: IntArray
    """Packages that failed their last allowed attempt (sent to manual handling)."""
    chute_moves: int
    chute_swaps: int
    chute_failures: int

    def totals(self) -> dict[str, int]:
        """Site totals of the interval, for logs and ``infos``."""
        return {
            "interval_index": self.interval_index,
            "first_inductions": int(self.first_inductions.sum()),
            "reinductions": int(self.reinductions.sum()),
            "sorted": int(self.sorted.sum()),
            "recirculated": int(self.recirculated.sum()),
            **{
                reason: int(self.recirculated_by_reason[row].sum())
                for row, reason in enumerate(REASONS)
            },
            "first_recirculations": int(self.first_recirculations.sum()),
            "exceptions": int(self.exceptions.sum()),
            "chute_moves": self.chute_moves,
            "chute_swaps": self.chute_swaps,
            "chute_failures": self.chute_failures,
        }


class SortationTwin:
    """One site-day, advanced one decision interval at a time.

    Args:
        scenario: the site and its physics.
        demand: the day's first inductions per tick and destination.
        seed: seeds chute failures, repair times and initial container fills.
        emit: if given, receives package-level contract events (slow path, small sites).
        initial_owner: the chute map in place before the day. ``None`` means the first
            allocation is the pre-shift setup and costs no chute moves; with a map, the first
            allocation's changes against it are moves like any other.
        outages: if given, the chute outages of the day are these (e.g. what a real floor
            reported) instead of random failures: the failure clocks never ring and are not
            drawn, so the random stream (initial fills) is the same as without, and two twins
            with the same seed and outages differ only in what their policies do.
    """

    _SHARED = frozenset({"scenario", "_demand", "_arrivals", "_arrival_totals", "_timing"})
    """Read-only attributes a branch shares instead of copying."""

    def __init__(
        self,
        scenario: Scenario,
        demand: DayDemand,
        seed: int,
        emit: Callable[[Envelope], None] | None = None,
        initial_owner: IntArray | None = None,
        outages: Sequence[Outage] | None = None,
    ) -> None:
        self.scenario = scenario
        self._timing = TwinTiming.of(scenario)
        self._set_demand(demand)
        n_c, n_d, n_a = scenario.eject_chutes, scenario.n_destinations, scenario.max_attempts
        timing = self._timing
        self._rng = np.random.default_rng(seed)
        self.interval_index = 0

        # chute state; a chute ejects at tick t iff owned and t >= _open_from
        self._owner = np.full(n_c, IDLE, dtype=np.int64)
        self._owner_set = initial_owner is not None
        if initial_owner is not None:
            self._owner[:] = self._checked_owner(initial_owner)
        self._owner_bin = np.full(n_c, n_d, dtype=np.int64)
        """Owner with IDLE mapped to the extra bin ``D`` so ``bincount`` needs no mask."""
        self._owned = np.zeros(n_c, dtype=np.bool_)
        self._held = np.zeros(n_d, dtype=np.int64)
        # room for one more package is what matters; fills start staggered so swaps do too
        self._fill = self._rng.uniform(0.0, scenario.container_capacity - 1.0, n_c)
        self._swap_until = np.zeros(n_c, dtype=np.int64)
        self._move_until = np.zeros(n_c, dtype=np.int64)
        self._out_until = np.zeros(n_c, dtype=np.int64)
        self._open_from = np.zeros(n_c, dtype=np.int64)
        self._scheduled = outages is not None
        """External outages instead of random failures (``_fail`` replays the schedule)."""
        if outages is None:
            self._next_failure = self._failure_clock(0, n_c)
        else:
            self._next_failure = np.full(n_c, _NEVER, dtype=np.int64)
            self._set_outages(outages)
        self._next_failure_min = self._next_outage_tick()

        # package pipeline
        self._travel = np.zeros((timing.travel_ticks + 1, n_a, n_d), dtype=np.int64)
        self._travel_count = np.zeros(timing.travel_ticks + 1, dtype=np.int64)
        self._travel_again = np.zeros(timing.travel_ticks + 1, dtype=np.int64)
        """Per travel slot: packages on attempt 2+ (zero means no attempt split is needed)."""
        self._returning = np.zeros((timing.reinduction_ticks + 1, n_a, n_d), dtype=np.int64)
        self._returning_count = np.zeros(timing.reinduction_ticks + 1, dtype=np.int64)
        self._queue = np.zeros((n_a, n_d), dtype=np.int64)
        self._queue_count = 0

        # scratch buffers of the hot loop
        self._open = np.zeros(n_c, dtype=np.bool_)
        self._chute_capacity = np.zeros(n_c, dtype=np.float64)
        self._fill_gather = np.zeros(n_c, dtype=np.float64)
        self._sorted_ext = np.zeros(n_d + 1, dtype=np.float64)
        """Sorted packages per destination with a zero bin for idle chutes."""

        # interval accumulators
        self._acc_reinducted = np.zeros(n_d, dtype=np.int64)
        self._acc_sorted = np.zeros(n_d, dtype=np.int64)
        self._acc_recirculated = np.zeros(n_d, dtype=np.int64)
        self._acc_by_reason = np.zeros((3, n_d), dtype=np.int64)
        self._acc_first_recirculated = np.zeros(n_d, dtype=np.int64)
        self._acc_exceptions = np.zeros(n_d, dtype=np.int64)
        self._acc_swaps = 0
        self._acc_failures = 0

        # history the decision path sees, and day totals
        self._arrival_lags = np.zeros((ARRIVAL_LAGS, n_d), dtype=np.int64)
        self._last_recirculated = np.zeros(n_d, dtype=np.int64)
        self._day = {
            key: 0
            for key in (
                "inducted",
                "sorted",
                "recirculated",
                "first_recirculated",
                "exceptions",
                "moves",
            )
        }

        self._emitter = EventEmitter(scenario, demand, emit) if emit is not None else None

    # ------------------------------------------------------------------ public API

    @property
    def done(self) -> bool:
        """True once every interval of the day has been simulated."""
        return self.interval_index >= self.scenario.n_intervals

    @property
    def demand(self) -> DayDemand:
        return self._demand

    @property
    def tick(self) -> int:
        """The next tick to simulate."""
        return self.interval_index * self.scenario.ticks_per_interval

    def run_interval(self, owner: IntArray) -> IntervalResult:
        """Apply ``owner`` (``[C]`` destination index or ``IDLE``) and simulate one interval.

        A chute whose owner changes closes for ``move_seconds`` and restarts with an empty
        container: the associate closes out the old destination's container before relabeling.
        """
        if self.done:
            raise RuntimeError("the day is over: no interval left to run")
        s = self.scenario
        moves = self._apply_allocation(self._checked_owner(owner))
        self._reset_accumulators()
        start = self.tick
        interval_first = self._arrivals[start : start + s.ticks_per_interval].sum(axis=0)
        for t in range(start, start + s.ticks_per_interval):
            self._step(t)
        self._reason_rows()
        result = IntervalResult(
            interval_index=self.interval_index,
            first_inductions=interval_first,
            reinductions=self._acc_reinducted.copy(),
            sorted=self._acc_sorted.copy(),
            recirculated=self._acc_recirculated.copy(),
            recirculated_by_reason=self._acc_by_reason.copy(),
            first_recirculations=self._acc_first_recirculated.copy(),
            exceptions=self._acc_exceptions.copy(),
            chute_moves=moves,
            chute_swaps=self._acc_swaps,
            chute_failures=self._acc_failures,
        )
        self._close_interval(result)
        return result

    def site_state(self) -> SiteState:
        """The floor as the decision path sees it before the next interval is decided.

        ``chute_open`` is physical readiness (in service, not swapping, not moving),
        independent of the owner, so an idle chute that is ready reads as open.
        """
        s = self.scenario
        t = self.tick
        available = self._out_until <= t
        ready = available & (self._swap_until <= t) & (self._move_until <= t)
        share_row = min(self.interval_index, s.n_intervals - 1)
        return SiteState(
            interval_index=self.interval_index,
            n_intervals=s.n_intervals,
            chute_owner=self._owner.copy(),
            chute_available=available,
            chute_open=ready,
            arrivals=self._arrival_lags.copy(),
            recirculated=self._last_recirculated.copy(),
            backlog=self.backlog(),
            expected_share=np.asarray(self._demand.expected_share[share_row], dtype=np.float64),
        )

    def backlog(self) -> IntArray:
        """[D] recirculated packages on their way back or waiting to be inducted again."""
        returning: IntArray = self._returning.sum(axis=(0, 1))
        queued: IntArray = self._queue.sum(axis=0)
        return returning + queued

    def in_system(self) -> int:
        """Packages inducted but neither sorted nor in exception (travelling or recirculating)."""
        return int(self._travel_count.sum()) + int(self._returning_count.sum()) + self._queue_count

    def kpis(self) -> DayKPIs:
        """KPIs of the day so far (the whole day once ``done``)."""
        day = self._day
        return DayKPIs.from_counts(
            inducted=day["inducted"],
            sorted=day["sorted"],
            recirculated=day["recirculated"],
            recirculation_amount=day["first_recirculated"],
            exceptions=day["exceptions"],
            chute_moves=day["moves"],
            day_hours=self.scenario.day_hours,
        )

    def branch(self, demand: DayDemand | None = None) -> SortationTwin:
        """An independent copy of the floor and its random state; events are not emitted.

        With ``demand``, the copy continues from the same floor state (same chutes, packages
        in flight, queue and failure clocks) but takes its future first inductions from
        another day, so one state can be rolled forward under several demand groups.
        """
        clone = copy.copy(self)
        for name, value in vars(self).items():
            if name in self._SHARED:
                continue
            if isinstance(value, np.ndarray):
                setattr(clone, name, value.copy())
        clone._rng = copy.deepcopy(self._rng)
        clone._day = dict(self._day)
        clone._emitter = None
        if demand is not None:
            clone._set_demand(demand)
        return clone

    # ------------------------------------------------------------------ setup helpers

    def _set_demand(self, demand: DayDemand) -> None:
        s = self.scenario
        shape = (s.n_ticks, s.n_destinations)
        if demand.arrivals.shape != shape:
            raise ValueError(f"demand arrivals shape {demand.arrivals.shape} != {shape}")
        self._demand = demand
        self._arrivals: IntArray = np.ascontiguousarray(demand.arrivals, dtype=np.int64)
        self._arrival_totals: IntArray = self._arrivals.sum(axis=1)

    def _checked_owner(self, owner: IntArray) -> IntArray:
        s = self.scenario
        out = np.asarray(owner, dtype=np.int64)
        if out.shape != (s.eject_chutes,):
            raise ValueError(f"owner must have shape ({s.eject_chutes},), got {out.shape}")
        if out.size and (out.min() < IDLE or out.max() >= s.n_destinations):
            raise ValueError("owner values must be destination indices or IDLE (-1)")
        return out

    def _set_outages(self, outages: Sequence[Outage]) -> None:
        """The outage schedule as arrays sorted by start tick (stable: input order at ties)."""
        n_c = self.scenario.eject_chutes
        for outage in outages:
            if outage.chute >= n_c:
                raise ValueError(f"outage chute {outage.chute} out of range (0..{n_c - 1})")
        order = sorted(range(len(outages)), key=lambda i: outages[i].start_tick)
        picked = [outages[i] for i in order]
        self._outage_start = np.array([o.start_tick for o in picked], dtype=np.int64)
        self._outage_chute = np.array([o.chute for o in picked], dtype=np.int64)
        self._outage_end = np.array(
            [_NEVER if o.end_tick is None else o.end_tick for o in picked], dtype=np.int64
        )
        self._outage_next = 0
        """Index of the first outage of the schedule that has not started yet."""

    def _next_outage_tick(self) -> int:
        """Tick at which the next chute goes out of service (the hot loop's only check)."""
        if not self._scheduled:
            return int(self._next_failure.min())
        if self._outage_next >= self._outage_start.shape[0]:
            return _NEVER
        return int(self._outage_start[self._outage_next])

    def observe_more(self, demand: DayDemand, outages: Sequence[Outage]) -> None:
        """Continue under more of an observed day: a live floor reports its first inductions
        and chute outages as they happen, so a twin re-running it (the canary gate's
        counterfactual, ``rollout/``) learns the day interval by interval instead of being
        rebuilt and re-run from tick 0 every time.

        The past cannot change: first inductions before :attr:`tick`, and outages that started
        before it, must be the ones simulated, except that an outage's end unknown so far
        (``None``) may become known if it lies at or after :attr:`tick` (the chute was out
        until now either way, so the floor so far is exactly the one the whole schedule gives;
        its chute reopens at ``max(end, swap, move)`` as if the end had been known all along).
        Anything else raises ``ValueError``: re-run the day from its start instead.
        """
        if not self._scheduled:
            raise ValueError("only a twin replaying reported outages can observe more of its day")
        t = self.tick
        arrivals = np.ascontiguousarray(demand.arrivals, dtype=np.int64)
        if arrivals.shape != self._arrivals.shape or not np.array_equal(
            arrivals[:t], self._arrivals[:t]
        ):
            raise ValueError("first inductions before the next tick changed")
        done = self._outage_next
        old = sorted(
            zip(
                self._outage_chute[:done].tolist(),
                self._outage_start[:done].tolist(),
                self._outage_end[:done].tolist(),
                strict=True,
            )
        )
        started = sorted(
            (o.chute, o.start_tick, _NEVER if o.end_tick is None else o.end_tick)
            for o in outages
            if o.start_tick < t
        )
        if len(old) != len(started):
            raise ValueError("outages that already started changed")
        ended: set[int] = set()
        for (chute, start, end), (new_chute, new_start, new_end) in zip(old, started, strict=True):
            if (chute, start) != (new_chute, new_start):
                raise ValueError("outages that already started changed")
            if end != new_end:
                if end != _NEVER or new_end < t:
                    raise ValueError("an outage end before the next tick changed")
                ended.add(chute)
        self._set_demand(demand)
        self._set_outages(outages)
        self._outage_next = int(np.searchsorted(self._outage_start, t, side="left"))
        self._next_failure_min = self._next_outage_tick()
        for chute in ended:
            ends = [end for c, _, end in started if c == chute]
            self._out_until[chute] = max(ends)
            self._open_from[chute] = max(
                self._out_until[chute], self._swap_until[chute], self._move_until[chute]
            )

    def _failure_clock(self, start: int, n: int) -> IntArray:
        """Tick of the next failure of ``n`` chutes in service from ``start`` on.

        Geometric waiting times are the exact per-tick Bernoulli failure process, drawn once
        per outage instead of once per chute and tick.
        """
        p = self._timing.failure_probability
        if p <= 0.0:
            return np.full(n, _NEVER, dtype=np.int64)
        waits = self._rng.geometric(p, n).astype(np.int64)
        return start + waits - 1

    def _apply_allocation(self, owner: IntArray) -> int:
        """Install ``owner``; return the number of chutes that changed owner (moves)."""
        s = self.scenario
        t = self.tick
        moves = 0
        if not self._owner_set:
            self._owner_set = True  # pre-shift setup: no move cost
        else:
            changed = np.flatnonzero(owner != self._owner)
            moves = int(changed.size)
            if moves:
                self._fill[changed] = 0.0
                self._move_until[changed] = t + self._timing.move_ticks
                np.maximum(self._open_from, self._move_until, out=self._open_from)
        self._owner[:] = owner
        self._owned[:] = owner != IDLE
        self._owner_bin[:] = np.where(self._owned, owner, s.n_destinations)
        self._held[:] = np.bincount(self._owner_bin, minlength=s.n_destinations + 1)[:-1]
        # Chutes grouped by owner, nearest (lowest index) first, for _nearest_first.
        self._chute_order = np.argsort(self._owner_bin, kind="stable")
        self._owner_sorted = self._owner_bin[self._chute_order]
        starts = np.flatnonzero(np.r_[True, self._owner_sorted[1:] != self._owner_sorted[:-1]])
        sizes = np.diff(np.r_[starts, self._owner_sorted.shape[0]])
        self._group_first = np.repeat(starts, sizes)
        self._day["moves"] += moves
        return moves

    def _reset_accumulators(self) -> None:
        for acc in (
            self._acc_reinducted,
            self._acc_sorted,
            self._acc_recirculated,
            self._acc_by_reason,
            self._acc_first_recirculated,
            self._acc_exceptions,
        ):
            acc.fill(0)
        self._acc_swaps = 0
        self._acc_failures = 0

    def _reason_rows(self) -> None:
        """Fill the per-interval ``no_chute_allocated`` and ``chute_over_rate`` rows."""
        by_reason = self._acc_by_reason
        unheld = self._held == 0
        by_reason[NO_CHUTE] = self._acc_recirculated * unheld
        by_reason[OVER_RATE] = (
            self._acc_recirculated - by_reason[NO_CHUTE] - by_reason[CHUTES_CLOSED]
        )

    def _close_interval(self, result: IntervalResult) -> None:
        self._arrival_lags[1:] = self._arrival_lags[:-1]
        self._arrival_lags[0] = result.first_inductions
        self._last_recirculated[:] = result.recirculated
        day = self._day
        day["inducted"] += int(result.first_inductions.sum())
        day["sorted"] += int(result.sorted.sum())
        day["recirculated"] += int(result.recirculated.sum())
        day["first_recirculated"] += int(result.first_recirculations.sum())
        day["exceptions"] += int(result.exceptions.sum())
        if self._emitter is not None:
            self._emitter.interval_closed(self.interval_index, self._chute_clocks())
        self.interval_index += 1

    # ------------------------------------------------------------------ the tick

    def _step(self, t: int) -> None:
        """Advance one tick; the hot loop (keep numpy calls few and allocation-free)."""
        emitter = self._emitter
        if t >= self._next_failure_min:
            self._fail(t)
        if emitter is not None:
            emitter.chute_transitions(t, self._chute_clocks())
        self._return_recirculated(t)
        self._induct(t)
        self._eject(t)

    def _fail(self, t: int) -> None:
        """Chutes whose failure clock rang go out of service for an exponential repair time."""
        if self._scheduled:
            self._fail_scheduled(t)
            return
        failed = np.flatnonzero(self._next_failure <= t)
        timing = self._timing
        repair = np.floor(self._rng.exponential(timing.repair_ticks_mean, failed.size) + 0.5)
        back = t + np.maximum(repair.astype(np.int64), 1)
        self._out_until[failed] = back
        self._open_from[failed] = np.maximum(self._open_from[failed], back)
        self._next_failure[failed] = back + self._failure_clock(0, failed.size)
        self._next_failure_min = int(self._next_failure.min())
        self._acc_failures += int(failed.size)
        if self._emitter is not None:
            self._emitter.chutes_failed(t, failed, self._chute_clocks())

    def _fail_scheduled(self, t: int) -> None:
        """Outages of the schedule that start by ``t`` take their chutes out of service.

        Same effect as a random failure; an outage that starts while its chute is still out
        (a failure right at the end of the last one) extends the outage, never shortens it.
        """
        lo = self._outage_next
        hi = int(np.searchsorted(self._outage_start, t, side="right"))
        self._outage_next = hi
        self._next_failure_min = self._next_outage_tick()
        if hi == lo:
            return
        chutes = self._outage_chute[lo:hi]
        ends = self._outage_end[lo:hi]
        np.maximum.at(self._out_until, chutes, ends)
        np.maximum.at(self._open_from, chutes, ends)
        failed = np.unique(chutes)
        self._acc_failures += int(failed.size)
        if self._emitter is not None:
            self._emitter.chutes_failed(t, failed, self._chute_clocks())

    def _return_recirculated(self, t: int) -> None:
        slot = t % self._returning_count.shape[0]
        count = int(self._returning_count[slot])
        if count:
            self._queue += self._returning[slot]
            self._returning[slot].fill(0)
            self._returning_count[slot] = 0
            self._queue_count += count

    def _induct(self, t: int) -> None:
        """First inductions as recorded; the queue gets the station capacity left over."""
        slots = self._travel_count.shape[0]
        slot = (t + self._timing.travel_ticks) % slots
        fresh_total = int(self._arrival_totals[t])
        if fresh_total:
            self._travel[slot, 0] += self._arrivals[t]
            self._travel_count[slot] += fresh_total
        if self._emitter is not None:
            self._emitter.first_inductions(t)
        if not self._queue_count:
            return
        leftover = int(self._timing.station_capacity[t]) - fresh_total
        if leftover <= 0:
            return
        if self._queue_count <= leftover:
            taken = self._queue.copy()
            self._queue.fill(0)
            n_taken = self._queue_count
        else:
            taken = self._take_from_queue(leftover)
            self._queue -= taken
            n_taken = leftover
        self._queue_count -= n_taken
        self._travel[slot] += taken
        self._travel_count[slot] += n_taken
        self._travel_again[slot] += n_taken
        self._acc_reinducted += taken.sum(axis=0)
        if self._emitter is not None:
            self._emitter.reinductions(t, taken)

    def _take_from_queue(self, capacity: int) -> IntArray:
        """[A, D] packages to re-induct when the queue exceeds the leftover capacity.

        Destinations share the capacity in proportion to their queue (largest remainder, ties
        to the lower index), so no destination starves and the result is deterministic.
        Within a destination the highest attempt goes first: it has waited longest and is the
        closest to exception.
        """
        per_destination = self._queue.sum(axis=0)
        total = int(per_destination.sum())
        scaled = per_destination * capacity
        grant = scaled // total
        short = capacity - int(grant.sum())
        if short:
            order = np.argsort(-(scaled % total), kind="stable")[:short]
            grant[order] += 1
        taken = np.zeros_like(self._queue)
        for attempt in range(self._queue.shape[0] - 1, 0, -1):
            take = np.minimum(self._queue[attempt], grant)
            taken[attempt] = take
            grant -= take
        return taken

    def _eject(self, t: int) -> None:
        """The chute field: sort what open chutes can take, recirculate the rest."""
        slots = self._travel_count.shape[0]
        slot = t % slots
        n_arriving = int(self._travel_count[slot])
        if not n_arriving:
            self._start_swaps(t)
            return
        arriving = self._travel[slot]
        again = int(self._travel_again[slot])
        arriving_d: IntArray = arriving.sum(axis=0) if again else arriving[0]

        is_open = self._open
        np.less_equal(self._open_from, t, out=is_open)
        is_open &= self._owned
        capacity = self._chute_capacity
        np.subtract(self.scenario.container_capacity, self._fill, out=capacity)
        np.minimum(capacity, self._timing.eject_per_tick, out=capacity)
        capacity *= is_open
        n_d = self.scenario.n_destinations
        capacity_d = np.bincount(self._owner_bin, weights=capacity, minlength=n_d + 1)[:n_d]
        whole = (capacity_d + _EPS).astype(np.int64)
        sorted_d = np.minimum(arriving_d, whole)
        n_sorted = int(sorted_d.sum())
        assigned = self._fill_gather
        if n_sorted:
            self._acc_sorted += sorted_d
            self._nearest_first(sorted_d, capacity, assigned)
            self._fill += assigned

        n_recirculated = n_arriving - n_sorted
        recirculated_a: IntArray | None = None
        reason: list[RecirculationReason] | None = None
        if n_recirculated:
            recirculated_d = arriving_d - sorted_d
            recirculated_a = self._recirculate(t, arriving, arriving_d, recirculated_d, again)
            self._acc_recirculated += recirculated_d
            # no_chute and over_rate rows are completed in _reason_rows at the interval end
            closed = self._open_per_destination(is_open) == 0
            closed &= self._held > 0
            self._acc_by_reason[CHUTES_CLOSED] += recirculated_d * closed
            if self._emitter is not None:
                reason = self._reasons(is_open)
        if self._emitter is not None:
            self._emitter.chute_field(
                t, arriving, recirculated_a, reason, sorted_d, assigned, self._chute_clocks()
            )
        arriving.fill(0)
        self._travel_count[slot] = 0
        self._travel_again[slot] = 0
        self._start_swaps(t)

    def _nearest_first(self, sorted_d: IntArray, capacity: FloatArray, out: FloatArray) -> None:
        """Spread each destination's sorted packages over its chutes, nearest chute first.

        Drives eject into the first open chute of their destination along their path (here:
        the lowest chute index) and go on to the next only when it is full or busy this tick.
        A destination's chutes therefore fill one after another and their container swaps
        stagger, as on a real floor; an even spread would fill them in lockstep and swap them
        all at once. ``out[c]`` receives chute ``c``'s share (float; whole packages per
        destination are exact in ``sorted_d``).
        """
        order = self._chute_order
        cap_sorted = capacity[order]
        before = np.cumsum(cap_sorted)
        before -= cap_sorted
        before -= before[self._group_first]
        want = self._sorted_ext
        want[: sorted_d.shape[0]] = sorted_d
        wanted = want[self._owner_sorted] - before
        np.clip(wanted, 0.0, cap_sorted, out=wanted)
        out[order] = wanted

    def _open_per_destination(self, is_open: BoolArray) -> FloatArray:
        """[D] open chutes of each destination (as float: ``bincount`` with weights)."""
        n_d = self.scenario.n_destinations
        counts = np.bincount(self._owner_bin, weights=is_open, minlength=n_d + 1)
        return cast(FloatArray, counts[:n_d])  # the stubs type bincount as integer always

    def _reasons(self, is_open: BoolArray) -> list[RecirculationReason]:
        """[D] recirculation reason of each destination this tick (one per destination).

        The hot loop only tracks ``chutes_full_or_swapping`` per tick: ``no_chute_allocated``
        is fixed for the interval by the allocation, and ``chute_over_rate`` is the rest.
        """
        n_d = self.scenario.n_destinations
        reason = np.full(n_d, OVER_RATE, dtype=np.int64)
        reason[self._open_per_destination(is_open) == 0] = CHUTES_CLOSED
        reason[self._held == 0] = NO_CHUTE
        return [REASONS[row] for row in reason.tolist()]

    def _chute_clocks(self) -> ChuteClocks:
        """The chute state the event emitter reads, as it is now."""
        return ChuteClocks(
            owner=self._owner,
            out_until=self._out_until,
            swap_until=self._swap_until,
            move_until=self._move_until,
            open_from=self._open_from,
        )

    def _recirculate(
        self,
        t: int,
        arriving: IntArray,
        arriving_d: IntArray,
        recirculated_d: IntArray,
        again: int,
    ) -> IntArray:
        """Split recirculations over attempts and send them round; return them ``[A, D]``.

        Packages of one destination arriving in one tick are interchangeable, so the
        recirculated ones are split over attempts in proportion to the arrivals (cumulative
        floor, exact in integers). A package on its last attempt goes to exception.
        """
        n_a = arriving.shape[0]
        if again:
            cumulative = np.cumsum(arriving, axis=0)
            split = (recirculated_d * cumulative) // np.maximum(arriving_d, 1)
            by_attempt: IntArray = split.copy()
            by_attempt[1:] -= split[:-1]
        else:
            by_attempt = np.zeros_like(arriving)
            by_attempt[0] = recirculated_d
        self._acc_first_recirculated += by_attempt[0]
        last = by_attempt[n_a - 1]
        n_exceptions = int(last.sum())
        if n_exceptions:
            self._acc_exceptions += last
        n_back = int(recirculated_d.sum()) - n_exceptions
        if n_back:
            slot = (t + self._timing.reinduction_ticks) % self._returning_count.shape[0]
            self._returning[slot, 1:] += by_attempt[:-1]
            self._returning_count[slot] += n_back
        return by_attempt

    def _start_swaps(self, t: int) -> None:
        """Containers without room for one more package close for a swap from next tick."""
        limit = self.scenario.container_capacity - 1.0 + _EPS
        if self._fill.max() < limit:
            return
        full = np.flatnonzero(self._fill >= limit)
        self._fill[full] = 0.0
        self._swap_until[full] = t + 1 + self._timing.swap_ticks
        np.maximum(self._open_from, self._swap_until, out=self._open_from)
        self._acc_swaps += int(full.size)
        if self._emitter is not None:
            self._emitter.chutes_full(t, full, self._chute_clocks())
