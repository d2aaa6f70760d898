"""The PettingZoo environment: API conformance, seeding, rewards and the default allocator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pettingzoo.test import parallel_api_test, parallel_seed_test

from decision.features import N_FEATURES
from decision.state import IDLE, SiteState
from floor.scenario import Scenario, load_scenario
from twin.bench import synthetic_day
from twin.day import DayDemand
from twin.env import SortationEnv, grant_in_request_order

SMALL = load_scenario("small")


def sample_small_day(rng: np.random.Generator) -> DayDemand:
    return synthetic_day(SMALL, int(rng.integers(2**31)))


def make_env() -> SortationEnv:
    return SortationEnv(SMALL, sample_small_day)


def test_parallel_api_conformance() -> None:
    parallel_api_test(make_env(), num_cycles=2 * SMALL.n_intervals)


def test_parallel_seed_determinism() -> None:
    parallel_seed_test(make_env, num_cycles=SMALL.n_intervals)


def rollout(seed: int, requests: int) -> list[tuple[dict[str, float], list[float]]]:
    env = make_env()
    observations, _ = env.reset(seed=seed)
    trace = []
    while env.agents:
        actions = dict.fromkeys(env.agents, requests)
        observations, rewards, _, _, _ = env.step(actions)
        trace.append((rewards, [float(o.sum()) for o in observations.values()]))
    return trace


def test_same_seed_same_episode_and_other_seed_other_day() -> None:
    assert rollout(3, 1) == rollout(3, 1)
    assert rollout(3, 1) != rollout(4, 1)


def test_episode_shape_rewards_and_terminations() -> None:
    env = make_env()
    observations, infos = env.reset(seed=0)
    assert set(observations) == set(SMALL.destinations) == set(infos)
    assert all(o.shape == (N_FEATURES,) and o.dtype == np.float32 for o in observations.values())
    scale = SMALL.mean_packages_per_hour * SMALL.interval_minutes / 60 / SMALL.n_destinations
    steps = 0
    while env.agents:
        _, rewards, terminations, truncations, infos = env.step(dict.fromkeys(env.agents, 1))
        steps += 1
        result = env.last_result
        assert result is not None
        for index, agent in enumerate(SMALL.destinations):
            assert rewards[agent] == pytest.approx(-result.recirculated[index] / scale)
            assert infos[agent]["recirculated"] == result.recirculated[index]
        assert not any(truncations.values())
        assert all(terminations.values()) == (steps == SMALL.n_intervals)
    assert steps == SMALL.n_intervals
    assert env.twin.done


def random_state(scenario: Scenario, rng: np.random.Generator) -> SiteState:
    n_c, n_d = scenario.eject_chutes, scenario.n_destinations
    owner = rng.integers(IDLE, n_d, n_c).astype(np.int64)
    return SiteState(
        interval_index=0,
        n_intervals=scenario.n_intervals,
        chute_owner=owner,
        chute_available=rng.random(n_c) < 0.8,
        chute_open=np.ones(n_c, dtype=np.bool_),
        arrivals=np.zeros((3, n_d), dtype=np.int64),
        recirculated=np.zeros(n_d, dtype=np.int64),
        backlog=np.zeros(n_d, dtype=np.int64),
        expected_share=np.full(n_d, 1.0 / n_d),
    )


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), name=st.sampled_from(["small", "large"]))
def test_default_allocator_stays_within_the_in_service_budget(seed: int, name: str) -> None:
    scenario = load_scenario(name)
    rng = np.random.default_rng(seed)
    state = random_state(scenario, rng)
    requests = rng.integers(0, scenario.max_chutes_per_destination + 1, scenario.n_destinations)
    owner = grant_in_request_order(requests.astype(np.int64), state)
    available = state.chute_available
    granted = np.bincount(owner[(owner != IDLE) & available], minlength=scenario.n_destinations)
    assert granted.sum() <= available.sum()
    assert (granted <= requests).all()
    if requests.sum() <= available.sum():
        np.testing.assert_array_equal(granted, requests)  # enough chutes: every request met
    else:
        assert granted.sum() == available.sum()  # scarce: no in-service chute left idle
    # out-of-service chutes keep their owner; kept chutes are not moved
    np.testing.assert_array_equal(owner[~available], state.chute_owner[~available])
    for destination in range(scenario.n_destinations):
        held = (state.chute_owner == destination) & available
        kept = held & (owner == destination)
        assert kept.sum() == min(held.sum(), granted[destination])


def test_allocator_prefers_larger_requests_when_chutes_run_out() -> None:
    state = random_state(SMALL, np.random.default_rng(0))
    budget = int(state.chute_available.sum())
    requests = np.zeros(SMALL.n_destinations, dtype=np.int64)
    requests[5] = budget
    requests[2] = 1
    owner = grant_in_request_order(requests, state)
    in_service = owner[state.chute_available]
    assert (in_service == 5).sum() == budget and (in_service == 2).sum() == 0


def test_observations_carry_the_honest_plan_not_the_days_own() -> None:
    """The env's agents see the plan the engine's policies see: the calendar forecast, then
    updated from arrivals; only ``oracle_plan=True`` hands them the day's own plan."""
    from decision.features import FEATURE_NAMES
    from floor.daytypes import default_groups
    from twin.closed_loop import day_plan
    from twin.groups import sample_day

    groups = default_groups(SMALL)
    col = FEATURE_NAMES.index("expected_share")
    day = sample_day(groups, 3, SMALL, seed=7)

    def first_shares(oracle: bool) -> np.ndarray:
        env = SortationEnv(SMALL, lambda rng: day, oracle_plan=oracle)
        observations, _ = env.reset(seed=1)
        return np.array([observations[a][col] for a in SMALL.destinations]) / SMALL.n_destinations

    honest = day_plan(day)
    assert honest.prior is not None and honest.group_shares is not None
    forecast = honest.prior @ honest.group_shares[:, 0, :]
    np.testing.assert_allclose(first_shares(False), forecast / forecast.sum(), rtol=1e-5)
    np.testing.assert_allclose(first_shares(True), day.expected_share[0], rtol=1e-5)
    assert not np.allclose(first_shares(False), first_shares(True), rtol=1e-3)
