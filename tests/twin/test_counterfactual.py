"""The shadow twin: observed days rebuilt from events and re-run under several policies."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from contracts.events import ChuteStateChanged, Envelope, PackageInducted
from decision.build import build_engine
from decision.engine import DecisionEngine
from floor.daytypes import default_groups
from floor.scenario import Scenario, load_scenario
from floor.site import load_site
from twin.bench import proportional_owner
from twin.closed_loop import DayRun, day_plan, run_day
from twin.counterfactual import ObservedDay, run_counterfactual
from twin.day import DayDemand
from twin.groups import sample_day
from twin.sim import IntervalResult, Outage, SortationTwin

SEED = 5


def scenario_with(**updates: Any) -> Scenario:
    return Scenario.model_validate({**load_scenario("small").model_dump(), **updates})


def engine(scenario: Scenario, policy: str) -> DecisionEngine:
    return build_engine(load_site(scenario), policy)


def day(scenario: Scenario, g: int = 2, seed: int = 1) -> DayDemand:
    return sample_day(default_groups(scenario), g, scenario, seed=seed)


def served(
    scenario: Scenario, policy: str = "proportional"
) -> tuple[DayDemand, DayRun, list[Envelope]]:
    demand = day(scenario)
    events: list[Envelope] = []
    run = run_day(engine(scenario, policy), demand, SEED, emit=events.append)
    return demand, run, events


def observed_from(
    demand: DayDemand, events: list[Envelope], closed_through: int | None = None
) -> ObservedDay:
    s = demand.scenario
    last = s.n_intervals - 1 if closed_through is None else closed_through
    return ObservedDay.from_events(s, demand.day_start, day_plan(demand), events, last)


# Default physics (few failures) and a failure-heavy floor (outages every interval).
SCENARIOS = {
    "default": scenario_with(),
    "failures": scenario_with(chute_failures_per_hour=0.4, repair_minutes=15),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_rerunning_the_serving_policy_reproduces_the_day_exactly(name: str) -> None:
    scenario = SCENARIOS[name]
    demand, run, events = served(scenario)
    observed = observed_from(demand, events)
    assert observed.ignored == 0 and observed.duplicates == 0
    assert observed.induction_seconds.shape[0] == demand.total
    np.testing.assert_array_equal(observed.demand().arrivals, demand.arrivals)
    if name == "failures":
        assert len(observed.outages) >= 10

    runs = run_counterfactual(observed, {"served": engine(scenario, "proportional")}, SEED)

    shadow = runs["served"]
    assert shadow.kpis == run.kpis
    np.testing.assert_array_equal(shadow.counts, run.counts_over_day())
    assert int(shadow.moves.sum()) == run.kpis.chute_moves
    assert shadow.policy_name == "proportional"
    assert int(shadow.first_inductions.sum()) == demand.total
    assert int(shadow.sorted.sum()) == run.kpis.sorted
    assert int(shadow.recirculated.sum()) == run.kpis.recirculated
    assert int(shadow.first_recirculations.sum()) == run.kpis.recirculation_amount


def test_a_partial_day_gives_the_same_first_intervals() -> None:
    scenario = SCENARIOS["failures"]
    demand, run, events = served(scenario)
    full = run_counterfactual(
        observed_from(demand, events), {"p": engine(scenario, "proportional")}, SEED
    )["p"]
    part = run_counterfactual(
        observed_from(demand, events, closed_through=5),
        {"p": engine(scenario, "proportional")},
        SEED,
    )["p"]
    assert part.counts.shape == (6, scenario.n_destinations)
    np.testing.assert_array_equal(part.counts, run.counts_over_day()[:6])
    for name in ("counts", "first_inductions", "recirculated", "sorted", "moves"):
        np.testing.assert_array_equal(getattr(part, name), getattr(full, name)[:6])
    assert part.kpis.inducted == int(full.first_inductions[:6].sum())
    assert part.kpis.sorted == int(full.sorted[:6].sum())
    nothing = run_counterfactual(
        observed_from(demand, events, closed_through=-1), {"p": engine(scenario, "static")}, SEED
    )["p"]
    assert nothing.counts.shape == (0, scenario.n_destinations)
    assert nothing.kpis.inducted == 0


def test_policies_share_the_arrivals_and_differ_in_outcome() -> None:
    scenario = SCENARIOS["default"]
    demand, _, events = served(scenario)
    engines = {"served": engine(scenario, "proportional"), "candidate": engine(scenario, "static")}
    runs = run_counterfactual(observed_from(demand, events), engines, SEED)
    served_run, candidate = runs["served"], runs["candidate"]
    assert candidate.policy_name == "static"
    assert served_run.kpis.inducted == candidate.kpis.inducted == demand.total
    np.testing.assert_array_equal(served_run.first_inductions, candidate.first_inductions)
    assert served_run.kpis != candidate.kpis
    assert not np.array_equal(served_run.counts, candidate.counts)
    # static holds one allocation all day
    assert (candidate.counts == candidate.counts[0]).all()


def test_unknown_ids_and_times_outside_the_day_are_ignored_and_counted() -> None:
    scenario = SCENARIOS["default"]
    demand, _, events = served(scenario)
    start, site = demand.day_start, scenario.site_id
    extra: list[Envelope] = [
        PackageInducted(
            event_id="x1", event_time=start, site_id=site, package_id="p1",
            destination="NOWHERE", station=0, attempt=1,
        ),
        PackageInducted(
            event_id="x2", event_time=start - timedelta(seconds=1), site_id=site,
            package_id="p2", destination=scenario.destinations[0], station=0, attempt=1,
        ),
        PackageInducted(
            event_id="x3", event_time=start + timedelta(hours=scenario.day_hours), site_id=site,
            package_id="p3", destination=scenario.destinations[0], station=0, attempt=1,
        ),
        PackageInducted(
            event_id="x4", event_time=start, site_id="other-site", package_id="p4",
            destination=scenario.destinations[0], station=0, attempt=1,
        ),
        ChuteStateChanged(
            event_id="x5", event_time=start, site_id=site, chute_id="C999",
            state="out_of_service",
        ),
        # re-inductions and other chute states are not observations of the day: skipped
        PackageInducted(
            event_id="x6", event_time=start, site_id=site, package_id="p6",
            destination=scenario.destinations[0], station=0, attempt=2,
        ),
        ChuteStateChanged(
            event_id="x7", event_time=start, site_id=site, chute_id="C001", state="full",
        ),
    ]  # fmt: skip
    redelivered = [e for e in events[:200] if isinstance(e, PackageInducted) and e.attempt == 1]
    observed = observed_from(demand, [*extra, *events, *events[:200]])
    assert observed.ignored == 5
    assert observed.duplicates == len(redelivered) > 0
    np.testing.assert_array_equal(observed.demand().arrivals, demand.arrivals)


def test_ticks_are_exact_at_tick_edges() -> None:
    scenario = SCENARIOS["default"]
    demand = day(scenario)
    start, site, tick = demand.day_start, scenario.site_id, scenario.tick_seconds
    destination = scenario.destinations[0]
    moments = [0.0, tick - 1e-6, tick, 7 * tick, 7 * tick + 1e-6, 8 * tick - 1e-6]
    events = [
        PackageInducted(
            event_id=f"e{n}", event_time=start + timedelta(seconds=at), site_id=site,
            package_id=f"p{n}", destination=destination, station=0, attempt=1,
        )
        for n, at in enumerate(moments)
    ]  # fmt: skip
    observed = observed_from(demand, list(events))
    np.testing.assert_array_equal(observed.arrival_ticks(), [0, 0, 1, 7, 7, 7])


def test_outages_from_events() -> None:
    scenario = SCENARIOS["default"]
    demand = day(scenario)
    start, site, tick = demand.day_start, scenario.site_id, scenario.tick_seconds

    def chute(n: int, at: float, chute_id: str, state: Any) -> ChuteStateChanged:
        return ChuteStateChanged(
            event_id=f"c{n}", event_time=start + timedelta(seconds=at), site_id=site,
            chute_id=chute_id, state=state,
        )  # fmt: skip

    events: list[Envelope] = [
        chute(0, 3 * tick, "C002", "out_of_service"),
        chute(1, 9 * tick + 1, "C002", "back_in_service"),  # mid-tick: back from tick 10
        chute(2, 12 * tick, "C003", "out_of_service"),
        chute(3, 20 * tick, "C003", "out_of_service"),  # failed again as it came back
        chute(4, 5 * tick, "C004", "back_in_service"),  # no outage open: ignored
    ]
    observed = observed_from(demand, events)
    assert observed.outages == (
        Outage(1, 3, 10),
        Outage(2, 12, 20),
        Outage(2, 20, None),
    )
    assert observed.ignored == 1


def run_fixed(twin: SortationTwin, demand: DayDemand) -> list[IntervalResult]:
    s = demand.scenario
    return [
        twin.run_interval(proportional_owner(s, demand.expected_share[k]))
        for k in range(s.n_intervals)
    ]


def test_replayed_outages_reproduce_random_failures() -> None:
    scenario = SCENARIOS["failures"]
    demand = day(scenario)
    events: list[Envelope] = []
    random = run_fixed(SortationTwin(scenario, demand, SEED, emit=events.append), demand)
    observed = observed_from(demand, events)
    replay_events: list[Envelope] = []
    twin = SortationTwin(
        scenario, demand, SEED, emit=replay_events.append, outages=observed.outages
    )
    replayed = run_fixed(twin, demand)
    assert sum(r.chute_failures for r in random) >= 10
    for a, b in zip(random, replayed, strict=True):
        assert a.totals() == b.totals()
    assert [e.model_dump() for e in replay_events] == [e.model_dump() for e in events]


def test_outages_keep_the_initial_fills_and_stop_random_failures() -> None:
    scenario = SCENARIOS["failures"]
    demand = day(scenario)
    random = SortationTwin(scenario, demand, SEED)
    quiet = SortationTwin(scenario, demand, SEED, outages=[])
    np.testing.assert_array_equal(random._fill, quiet._fill)
    results = run_fixed(quiet, demand)
    assert sum(r.chute_failures for r in results) == 0
    assert quiet.site_state().chute_available.all()


def test_an_outage_closes_its_chute_for_its_ticks() -> None:
    scenario = SCENARIOS["default"]
    demand = day(scenario)
    tpi = scenario.ticks_per_interval
    twin = SortationTwin(
        scenario, demand, SEED, outages=[Outage(3, 1, 2 * tpi), Outage(4, tpi + 1, None)]
    )
    owner = proportional_owner(scenario, demand.expected_share[0])
    assert twin.run_interval(owner).chute_failures == 1
    state = twin.site_state()
    assert not state.chute_available[3] and state.chute_available[4]
    assert twin.run_interval(owner).chute_failures == 1
    state = twin.site_state()
    assert state.chute_available[3] and not state.chute_available[4]
    twin.run_interval(owner)
    assert not twin.site_state().chute_available[4]
    with pytest.raises(ValueError):
        SortationTwin(scenario, demand, SEED, outages=[Outage(scenario.eject_chutes, 0)])
    with pytest.raises(ValueError):
        Outage(0, 5, 5)
