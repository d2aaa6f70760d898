"""The gate's incumbent twin, stepped interval by interval as events arrive, equals the shadow
report's whole-day counterfactual on the same events at every interval (the gate compares with
exactly what ``shadow report`` would show), late events included."""

from __future__ import annotations

import random

import numpy as np
import pytest

from contracts.events import ChuteStateChanged, Envelope, IntervalClosed, PackageInducted
from decision.build import build_engine
from floor.daytypes import default_groups
from floor.forecast import honest_plan
from floor.scenario import Scenario, load_scenario
from floor.site import load_site
from rollout.incumbent import IncumbentTwin, ObservedSoFar
from rollout.shadow import counterfactual_mean
from twin.closed_loop import run_day
from twin.counterfactual import ObservedDay
from twin.groups import sample_day


def _day(scenario_name: str, seed: int, failures: float) -> tuple[Scenario, list[Envelope]]:
    scenario = load_scenario(scenario_name).model_copy(update={"chute_failures_per_hour": failures})
    groups = default_groups(scenario)
    demand = sample_day(groups, 2, scenario, seed=seed)
    events: list[Envelope] = []
    run_day(build_engine(load_site(scenario), "static"), demand, seed=seed, emit=events.append)
    return scenario, events


@pytest.mark.parametrize("late", [False, True])
def test_stepped_incumbent_equals_the_whole_day_counterfactual_at_every_interval(
    late: bool,
) -> None:
    scenario, events = _day("small", 3, failures=0.5)  # many outages: ends learned later
    assert any(isinstance(e, ChuteStateChanged) and e.state == "out_of_service" for e in events)
    day_start = next(e for e in events if isinstance(e, IntervalClosed)).interval_start
    plan = honest_plan(default_groups(scenario), day_start.date(), "day")
    site = load_site(scenario)
    seeds = 3
    stepped = IncumbentTwin(
        scenario, plan, [build_engine(site, "proportional") for _ in range(seeds)], 11
    )
    observed = ObservedSoFar(scenario, day_start)
    seen: list[Envelope] = []
    held: list[Envelope] = []
    rng = random.Random(5)
    for event in events:
        if isinstance(event, IntervalClosed):
            k = event.interval_index
            if late and held and k % 3 == 2:  # inductions of earlier intervals arrive late
                for old in held:
                    observed.add(old)
                held.clear()
            stepped.advance(observed, k)
            if late and held:
                continue  # the batch sees them only once they arrived
            batch = counterfactual_mean(
                ObservedDay.from_events(scenario, day_start, plan, seen, k),
                {"p": build_engine(site, "proportional")},
                11,
                seeds,
            )["p"]
            assert np.array_equal(stepped.recirculated[: k + 1], batch.recirculated), k
            assert np.array_equal(stepped.first_inductions[: k + 1], batch.first_inductions), k
            continue
        seen.append(event)
        if late and isinstance(event, PackageInducted) and rng.random() < 0.01:
            held.append(event)
        else:
            observed.add(event)
    assert stepped.simulated == scenario.n_intervals
    assert stepped.restarts > 0 if late else stepped.restarts == 0
