"""The vectorized twin: conservation, determinism, physics sanity, branching and events."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.events import (
    ChuteStateChanged,
    Envelope,
    IntervalClosed,
    PackageInducted,
    PackageRecirculated,
    PackageSorted,
)
from decision.state import ARRIVAL_LAGS, IDLE
from floor.scenario import Scenario, load_scenario
from twin.bench import bench_twin, proportional_owner, synthetic_day
from twin.day import DayDemand
from twin.sim import (
    CHUTES_CLOSED,
    NO_CHUTE,
    OVER_RATE,
    REASONS,
    IntervalResult,
    SortationTwin,
)

IntArray = npt.NDArray[np.int64]


def scenario_with(name: str = "small", **updates: Any) -> Scenario:
    """A built-in scenario with some fields changed (validated again, no stale caches)."""
    return Scenario.model_validate({**load_scenario(name).model_dump(), **updates})


def poisson_day(
    scenario: Scenario, seed: int, scale: float = 1.0, weights: list[float] | None = None
) -> DayDemand:
    """A seeded Poisson day at ``scale`` times the scenario's mean rate."""
    rng = np.random.default_rng(seed)
    n_d = scenario.n_destinations
    mix = np.asarray(weights if weights is not None else rng.dirichlet(np.ones(n_d)), float)
    mix = mix / mix.sum()
    per_tick = scenario.mean_packages_per_hour * scale * scenario.tick_seconds / 3600
    arrivals = rng.poisson(per_tick * mix, size=(scenario.n_ticks, n_d)).astype(np.int64)
    share = np.tile(mix, (scenario.n_intervals, 1))
    return DayDemand(scenario, arrivals, share, scenario.day_start, f"poisson {seed}")


def run_day(twin: SortationTwin, owners: list[IntArray]) -> list[IntervalResult]:
    results = []
    for owner in owners:
        results.append(twin.run_interval(owner))
        assert_conserved(twin)
    return results


def assert_conserved(twin: SortationTwin) -> None:
    """Every inducted package is sorted, in exception or still on the floor: exactly."""
    k = twin.kpis()
    assert k.inducted == k.sorted + k.exceptions + twin.in_system()
    assert k.unsorted == k.inducted - k.sorted
    assert k.recirculation_amount <= k.recirculated
    assert k.exceptions <= k.recirculation_amount


def random_owners(scenario: Scenario, rng: np.random.Generator, idle_p: float) -> list[IntArray]:
    """A different random chute map every interval: maximal move churn, some chutes idle."""
    owners = []
    for _ in range(scenario.n_intervals):
        owner = rng.integers(0, scenario.n_destinations, scenario.eject_chutes)
        owner[rng.random(scenario.eject_chutes) < idle_p] = IDLE
        owners.append(owner.astype(np.int64))
    return owners


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    load=st.sampled_from([0.3, 1.0, 6.0]),
    idle_p=st.sampled_from([0.0, 0.4, 1.0]),
    churn=st.booleans(),
    failures=st.sampled_from([0.0, 20.0]),
)
def test_conservation_is_exact_on_random_days_and_allocations(
    seed: int, load: float, idle_p: float, churn: bool, failures: float
) -> None:
    scenario = scenario_with(chute_failures_per_hour=failures, container_capacity=40)
    rng = np.random.default_rng(seed)
    owners = random_owners(scenario, rng, idle_p)
    if not churn:
        owners = [owners[0]] * scenario.n_intervals
    twin = SortationTwin(scenario, poisson_day(scenario, seed, load), seed=seed)
    results = run_day(twin, owners)
    assert twin.done
    for result in results:
        np.testing.assert_array_equal(
            result.recirculated_by_reason.sum(axis=0), result.recirculated
        )
        assert (result.sorted >= 0).all() and (result.recirculated >= 0).all()
    kpis = twin.kpis()
    assert kpis.inducted == twin.demand.total
    assert kpis.chute_moves == sum(r.chute_moves for r in results)
    if churn and idle_p < 1.0:
        assert kpis.chute_moves > 0
    if idle_p == 1.0:
        assert kpis.sorted == 0


def test_heavy_chute_overload_sends_packages_to_exception_and_still_conserves() -> None:
    scenario = scenario_with(induction_stations=10)
    owner = np.full(scenario.eject_chutes, IDLE, dtype=np.int64)
    owner[:2] = [0, 1]
    twin = SortationTwin(scenario, poisson_day(scenario, 3, scale=2.0), seed=3)
    run_day(twin, [owner] * scenario.n_intervals)
    kpis = twin.kpis()
    assert kpis.exceptions > 0
    assert kpis.recirculation_rate > 1.0  # packages go round several times
    assert kpis.sorted > 0


def test_fresh_inductions_take_all_station_capacity_and_the_queue_waits() -> None:
    scenario = scenario_with(induction_stations=1)
    owner = np.full(scenario.eject_chutes, IDLE, dtype=np.int64)
    twin = SortationTwin(scenario, poisson_day(scenario, 3, scale=8.0), seed=3)
    results = run_day(twin, [owner] * scenario.n_intervals)
    assert sum(int(r.reinductions.sum()) for r in results) == 0
    assert twin.kpis().exceptions == 0
    assert twin.kpis().sorted == 0
    assert twin.in_system() == twin.kpis().inducted
    travel_ticks = round(scenario.travel_seconds / scenario.tick_seconds)
    on_drives = int(twin.demand.arrivals[-travel_ticks:].sum())
    assert twin.in_system() - int(twin.backlog().sum()) == on_drives


def test_same_inputs_give_identical_results() -> None:
    scenario = load_scenario("large")
    demand = synthetic_day(scenario, 11)
    owners = random_owners(scenario, np.random.default_rng(5), 0.1)[:20]

    def run() -> tuple[list[IntervalResult], dict[str, int | float]]:
        twin = SortationTwin(scenario, demand, seed=9)
        return [twin.run_interval(o) for o in owners], twin.kpis().to_dict()

    (first, kpis_a), (second, kpis_b) = run(), run()
    assert kpis_a == kpis_b
    for a, b in zip(first, second, strict=True):
        assert a.totals() == b.totals()
        np.testing.assert_array_equal(a.recirculated_by_reason, b.recirculated_by_reason)
        np.testing.assert_array_equal(a.sorted, b.sorted)


def test_a_destination_without_chutes_recirculates_everything_as_no_chute() -> None:
    scenario = load_scenario("small")
    owner = proportional_owner(scenario, np.ones(scenario.n_destinations))
    unserved = np.setdiff1d(np.arange(scenario.n_destinations), owner)
    assert unserved.size > 0  # small: fewer chutes than destinations
    twin = SortationTwin(scenario, poisson_day(scenario, 1), seed=1)
    results = run_day(twin, [owner] * scenario.n_intervals)
    for result in results:
        assert (result.sorted[unserved] == 0).all()
        arrived = result.first_inductions[unserved] + result.reinductions[unserved]
        assert result.recirculated_by_reason[NO_CHUTE, unserved].sum() > 0
        assert (result.recirculated_by_reason[[CHUTES_CLOSED, OVER_RATE]][:, unserved] == 0).all()
        assert result.recirculated[unserved].sum() <= arrived.sum() + 4 * 10_000
    # every unserved package ends in exception or is still going round (or on a drive)
    total_unserved = sum(int(r.first_inductions[unserved].sum()) for r in results)
    exceptions = sum(int(r.exceptions[unserved].sum()) for r in results)
    circulating = int(twin.backlog()[unserved].sum())
    on_drives = twin.in_system() - int(twin.backlog().sum())
    assert exceptions > 0
    assert 0 <= total_unserved - exceptions - circulating <= on_drives


def test_more_chutes_for_an_overloaded_destination_recirculate_less() -> None:
    scenario = scenario_with(chute_failures_per_hour=0.0)
    weights = [20.0] + [1.0] * (scenario.n_destinations - 1)
    demand = poisson_day(scenario, 7, scale=1.5, weights=weights)
    recirculated = []
    for chutes in (1, 2, 4):
        owner = np.full(scenario.eject_chutes, IDLE, dtype=np.int64)
        owner[:chutes] = 0
        owner[chutes:] = np.arange(1, scenario.eject_chutes - chutes + 1)
        twin = SortationTwin(scenario, demand, seed=7)
        results = run_day(twin, [owner] * scenario.n_intervals)
        recirculated.append(sum(int(r.recirculated[0]) for r in results))
    assert recirculated[0] > recirculated[1] > recirculated[2]


def test_over_rate_is_the_reason_when_open_chutes_cannot_keep_up() -> None:
    scenario = scenario_with(chute_failures_per_hour=0.0, container_capacity=10_000)
    demand = poisson_day(scenario, 2, scale=6.0, weights=[1.0] + [0.0] * 19)
    owner = np.full(scenario.eject_chutes, IDLE, dtype=np.int64)
    owner[0] = 0
    twin = SortationTwin(scenario, demand, seed=2)
    result = twin.run_interval(owner)
    per_tick = scenario.chute_packages_per_minute * scenario.tick_seconds / 60
    assert result.sorted[0] <= per_tick * scenario.ticks_per_interval
    assert result.recirculated_by_reason[OVER_RATE, 0] > 0
    assert result.recirculated_by_reason[[NO_CHUTE, CHUTES_CLOSED], 0].sum() == 0


def test_full_containers_swap_and_close_the_chute() -> None:
    scenario = scenario_with(chute_failures_per_hour=0.0, container_capacity=20)
    demand = poisson_day(scenario, 4, weights=[1.0] + [0.0] * 19)
    owner = np.full(scenario.eject_chutes, IDLE, dtype=np.int64)
    owner[0] = 0
    twin = SortationTwin(scenario, demand, seed=4)
    results = run_day(twin, [owner] * scenario.n_intervals)
    assert sum(r.chute_swaps for r in results) > 0
    assert sum(int(r.recirculated_by_reason[CHUTES_CLOSED, 0]) for r in results) > 0


def test_moves_close_chutes_and_are_counted() -> None:
    scenario = scenario_with(chute_failures_per_hour=0.0)
    demand = poisson_day(scenario, 5)
    first = np.arange(scenario.eject_chutes, dtype=np.int64)
    second = first + scenario.eject_chutes  # every chute to another destination
    twin = SortationTwin(scenario, demand, seed=5)
    assert twin.run_interval(first).chute_moves == 0  # the pre-shift setup is free
    state = twin.site_state()
    assert state.chute_open.all()
    moved = twin.run_interval(second)
    assert moved.chute_moves == scenario.eject_chutes
    stay = SortationTwin(scenario, demand, seed=5, initial_owner=first)
    assert stay.run_interval(first).chute_moves == 0
    assert stay.run_interval(second).chute_moves == scenario.eject_chutes


def test_failures_take_chutes_out_of_service() -> None:
    scenario = scenario_with(chute_failures_per_hour=30.0, repair_minutes=60.0)
    twin = SortationTwin(scenario, poisson_day(scenario, 6), seed=6)
    owner = proportional_owner(scenario, np.ones(scenario.n_destinations))
    unavailable = 0
    failures = 0
    while not twin.done:
        failures += twin.run_interval(owner).chute_failures
        unavailable += int((~twin.site_state().chute_available).sum())
        assert_conserved(twin)
    assert failures > 0 and unavailable > 0


def test_site_state_reports_history_and_backlog() -> None:
    scenario = load_scenario("small")
    demand = poisson_day(scenario, 8, scale=3.0)
    owner = proportional_owner(scenario, np.ones(scenario.n_destinations))
    twin = SortationTwin(scenario, demand, seed=8)
    state = twin.site_state()
    assert state.interval_index == 0 and (state.arrivals == 0).all()
    assert state.n_chutes == scenario.eject_chutes
    per_interval = demand.interval_arrivals()
    for interval in range(ARRIVAL_LAGS + 1):
        result = twin.run_interval(owner)
        state = twin.site_state()
        assert state.interval_index == interval + 1
        np.testing.assert_array_equal(state.arrivals[0], per_interval[interval])
        np.testing.assert_array_equal(state.recirculated, result.recirculated)
        np.testing.assert_array_equal(state.chute_owner, owner)
        np.testing.assert_allclose(state.expected_share, demand.expected_share[interval + 1])
        assert 0 <= state.backlog.sum() <= twin.in_system()
    np.testing.assert_array_equal(state.arrivals[ARRIVAL_LAGS - 1], per_interval[1])
    assert state.backlog.sum() > 0  # 3x load on 10 chutes: something is always going round


def test_branch_is_independent_and_reproduces_the_original() -> None:
    scenario = load_scenario("small")
    demand = poisson_day(scenario, 9, scale=2.0)
    owner = proportional_owner(scenario, np.ones(scenario.n_destinations))
    twin = SortationTwin(scenario, demand, seed=9)
    twin.run_interval(owner)
    copy = twin.branch()
    ahead = copy.run_interval(owner)
    assert copy.interval_index == 2 and twin.interval_index == 1
    same = twin.run_interval(owner)
    assert same.totals() == ahead.totals()
    assert twin.kpis() == copy.kpis()


def test_branch_with_another_day_takes_that_days_future_arrivals() -> None:
    scenario = load_scenario("small")
    owner = proportional_owner(scenario, np.ones(scenario.n_destinations))
    twin = SortationTwin(scenario, poisson_day(scenario, 10), seed=10)
    twin.run_interval(owner)
    other = poisson_day(scenario, 99, scale=2.0)
    copy = twin.branch(demand=other)
    result = copy.run_interval(owner)
    np.testing.assert_array_equal(result.first_inductions, other.interval_arrivals()[1])
    np.testing.assert_allclose(copy.site_state().expected_share, other.expected_share[2])
    assert_conserved(copy)


def test_events_carry_the_same_counts_as_the_fast_path() -> None:
    scenario = scenario_with(chute_failures_per_hour=2.0, container_capacity=30)
    demand = poisson_day(scenario, 12, scale=1.5)
    owners = random_owners(scenario, np.random.default_rng(12), 0.2)
    events: list[Envelope] = []
    silent = SortationTwin(scenario, demand, seed=12)
    loud = SortationTwin(scenario, demand, seed=12, emit=events.append)
    for owner in owners:
        assert silent.run_interval(owner).totals() == loud.run_interval(owner).totals()
    kpis = loud.kpis()
    assert kpis == silent.kpis()
    by_type = Counter(type(event) for event in events)
    first = [e for e in events if isinstance(e, PackageInducted) and e.attempt == 1]
    assert len(first) == kpis.inducted
    assert by_type[PackageSorted] == kpis.sorted
    assert by_type[PackageRecirculated] == kpis.recirculated
    assert by_type[IntervalClosed] == scenario.n_intervals
    assert by_type[ChuteStateChanged] > 0
    assert len({e.event_id for e in events}) == len(events)
    sorted_ids = [e.package_id for e in events if isinstance(e, PackageSorted)]
    assert len(set(sorted_ids)) == len(sorted_ids)  # a package is sorted at most once
    distinct = {e.package_id for e in events if isinstance(e, PackageRecirculated)}
    assert len(distinct) == kpis.recirculation_amount
    last_seen: dict[str, Any] = {}
    for event in events:
        if isinstance(event, PackageInducted | PackageSorted | PackageRecirculated):
            previous = last_seen.get(event.package_id)
            assert previous is None or previous <= event.event_time
            last_seen[event.package_id] = event.event_time


def test_emitted_reasons_match_interval_results() -> None:
    scenario = load_scenario("small")
    demand = poisson_day(scenario, 13, scale=2.0)
    owner = proportional_owner(scenario, np.ones(scenario.n_destinations))
    events: list[Envelope] = []
    twin = SortationTwin(scenario, demand, seed=13, emit=events.append)
    results = run_day(twin, [owner] * scenario.n_intervals)
    expected = {
        reason: sum(int(r.recirculated_by_reason[row].sum()) for r in results)
        for row, reason in enumerate(REASONS)
    }
    seen = Counter(e.reason for e in events if isinstance(e, PackageRecirculated))
    assert {reason: seen.get(reason, 0) for reason in REASONS} == expected


def test_invalid_allocations_are_rejected() -> None:
    scenario = load_scenario("small")
    twin = SortationTwin(scenario, poisson_day(scenario, 0), seed=0)
    with pytest.raises(ValueError, match="shape"):
        twin.run_interval(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="destination indices"):
        twin.run_interval(np.full(scenario.eject_chutes, scenario.n_destinations))


def test_bench_reports_speed_and_a_plausible_recirculation_rate() -> None:
    report = bench_twin("small", days=1, seed=0)
    assert report["days_per_second"] > 0
    assert report["ticks_per_second"] == pytest.approx(
        report["days_per_second"] * load_scenario("small").n_ticks
    )
    assert report["mean_recirculation_rate"] > 0.1  # small: fewer chutes than destinations


def test_a_typical_large_day_under_a_proportional_plan_recirculates_a_few_percent() -> None:
    scenario = load_scenario("large")
    demand = synthetic_day(scenario, 0)
    owner = proportional_owner(scenario, demand.expected_share.mean(axis=0))
    assert (np.bincount(owner[owner >= 0], minlength=scenario.n_destinations) >= 1).all()
    twin = SortationTwin(scenario, demand, seed=0)
    run_day(twin, [owner] * scenario.n_intervals)
    assert 0.005 < twin.kpis().recirculation_rate < 0.06
