"""The event-built SiteState equals the twin's at every boundary: the heart of replay equivalence.

No Kafka: the twin's emitter feeds the tracker directly, in the order the twin emits.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from contracts.events import (
    AllocationDecided,
    DayStarted,
    Envelope,
    IntervalClosed,
    PackageInducted,
)
from decision.build import build_engine
from decision.state import SiteState
from decision.tracker import SiteTracker, TrackerConfig, UnknownEntityError
from floor.daytypes import default_groups
from floor.guardrails import load_guardrails
from floor.scenario import Scenario, load_scenario
from floor.site import load_site
from twin.closed_loop import day_plan
from twin.groups import sample_day
from twin.sim import SortationTwin


def assert_same_state(ours: SiteState, twin: SiteState) -> None:
    assert ours.interval_index == twin.interval_index
    assert ours.n_intervals == twin.n_intervals
    for name in ("chute_owner", "chute_available", "chute_open", "arrivals", "recirculated"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(twin, name), err_msg=name)
    np.testing.assert_array_equal(ours.backlog, twin.backlog, err_msg="backlog")
    np.testing.assert_array_equal(ours.expected_share, twin.expected_share)


def run_compared(scenario: Scenario, group: int, seed: int, policy: str) -> int:
    """Drive the twin with the engine on the *tracker's* state; compare every boundary."""
    groups = default_groups(scenario)
    demand = sample_day(groups, group, scenario, seed=seed)
    engine = build_engine(load_site(scenario, load_guardrails("small")), policy)
    engine.start_day(day_plan(demand))
    tracker = SiteTracker(TrackerConfig.from_scenario(scenario))
    tracker.start_day(demand.expected_share)
    closed: list[int] = []

    def emit(event: Envelope) -> None:
        if isinstance(event, IntervalClosed):
            closed.append(event.interval_index)
        elif not isinstance(event, AllocationDecided | DayStarted):
            tracker.apply(event)

    twin = SortationTwin(scenario, demand, seed=seed, emit=emit)
    interval = timedelta(minutes=scenario.interval_minutes)
    checked = 0
    while not twin.done:
        state = tracker.state()
        assert_same_state(state, twin.site_state())
        checked += 1
        start = demand.day_start + interval * state.interval_index
        decision = engine.decide(state, interval_start=start, now=start)
        tracker.apply_allocation(decision.event)
        twin.run_interval(decision.owner)
        assert closed[-1] == state.interval_index
        tracker.close_interval(state.interval_index)
    return checked


@pytest.mark.parametrize(
    ("group", "seed", "policy", "physics"),
    [
        (0, 1, "proportional", {}),
        (3, 2, "static", {}),
        (5, 3, "proportional", {"chute_failures_per_hour": 2.0, "container_capacity": 30}),
        (7, 4, "proportional", {"chute_failures_per_hour": 1.0, "move_seconds": 1800}),
    ],
)
def test_tracker_state_equals_twin_state_at_every_boundary(
    group: int, seed: int, policy: str, physics: dict[str, float]
) -> None:
    scenario = load_scenario("small").model_copy(update=physics)
    assert run_compared(scenario, group, seed, policy) == scenario.n_intervals


def test_snapshot_round_trips_through_json_types() -> None:
    scenario = load_scenario("small")
    config = TrackerConfig.from_scenario(scenario)
    tracker = SiteTracker(config)
    share = np.full((scenario.n_intervals, scenario.n_destinations), 0.05)
    tracker.start_day(share)
    tracker.apply_owner(np.arange(scenario.eject_chutes) % scenario.n_destinations, 0)
    tracker.apply_owner(np.zeros(scenario.eject_chutes, dtype=np.int64), 1)
    tracker.swapping[3] = True
    copy = SiteTracker.from_dict(config, tracker.to_dict(), share)
    assert copy.to_dict() == tracker.to_dict()
    assert_same_state(copy.state(), tracker.state())


def test_unknown_destination_is_an_error_and_changes_nothing() -> None:
    scenario = load_scenario("small")
    tracker = SiteTracker(TrackerConfig.from_scenario(scenario))
    before = tracker.to_dict()
    event = PackageInducted(
        event_id="x",
        event_time=scenario.day_start,
        site_id=scenario.site_id,
        package_id="p",
        destination="NOWHERE",
        station=0,
        attempt=1,
    )
    with pytest.raises(UnknownEntityError, match="NOWHERE"):
        tracker.apply(event)
    assert tracker.to_dict() == before
