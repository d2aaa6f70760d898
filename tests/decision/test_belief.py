"""The honest plan: a calendar forecast before the day, a causal online update within it."""

from __future__ import annotations

from datetime import date

import numpy as np

from decision.belief import PlanBelief
from evaluation.suites import with_drift
from floor.daytypes import default_groups
from floor.forecast import calendar_prior, honest_plan
from floor.scenario import load_scenario
from twin.groups import sample_day


def test_the_calendar_prior_uses_only_history_before_the_day() -> None:
    groups = default_groups(load_scenario("large"))
    before_history = calendar_prior(groups, date(2020, 6, 1))
    assert np.allclose(before_history, 1 / groups.n_groups)  # nothing known yet: smoothing only
    prior = calendar_prior(groups, date(2025, 3, 3))
    assert prior.shape == (groups.n_groups,) and abs(prior.sum() - 1) < 1e-12
    assert prior.max() > 2 / groups.n_groups  # the calendar says something
    plan = honest_plan(groups, date(2025, 3, 3))
    assert plan.group_shares is not None and plan.prior is not None
    assert np.allclose(plan.expected_share.sum(axis=1), 1.0)


def _belief_on(day_counts: np.ndarray, upto: int) -> PlanBelief:
    groups = default_groups(load_scenario("large"))
    plan = honest_plan(groups, date(2025, 1, 6))
    assert plan.group_shares is not None and plan.prior is not None
    belief = PlanBelief(plan.group_shares, plan.prior)
    for k in range(upto):
        belief.observe(k, day_counts[k])
    return belief


def test_on_a_group_day_the_posterior_finds_the_group_and_trusts_it() -> None:
    scenario = load_scenario("large")
    groups = default_groups(scenario)
    for g in (3, 16):
        counts = sample_day(groups, g, scenario, seed=5).interval_arrivals()
        belief = _belief_on(counts, 6)
        assert int(np.argmax(belief.posterior())) == g
        assert belief.trust() > 0.9
        assert np.allclose(belief.share(6), groups.expected_share(g)[6], atol=1e-6)


def test_a_drifted_day_loses_the_plans_trust_and_the_share_follows_the_floor() -> None:
    scenario = load_scenario("large")
    groups = default_groups(scenario)
    day = sample_day(groups, 3, scenario, seed=5)
    drifted = with_drift(day, 1.0, seed=5).interval_arrivals()
    belief = _belief_on(drifted, 6)
    assert belief.trust() < 0.2
    truth = drifted[6] / drifted[6].sum()
    group_error = np.abs(groups.expected_share(3)[6] - truth).sum()
    assert np.abs(belief.share(6) - truth).sum() < 0.6 * group_error


def test_the_plan_state_carries_the_trust_the_policy_observes() -> None:
    """``plan_trust`` reaches the state (and the ``trust`` feature set) from the same belief
    that corrects the share: high on a group day, low on a drifted one."""
    from dataclasses import replace

    from decision.features import FEATURE_NAMES, FeatureScale, observe
    from twin.sim import SortationTwin

    scenario = load_scenario("large")
    groups = default_groups(scenario)
    day = sample_day(groups, 3, scenario, seed=5)
    col = FEATURE_NAMES.index("plan_trust")
    for demand, low, high in ((day, 0.9, 1.0), (with_drift(day, 1.0, seed=5), 0.0, 0.2)):
        counts = demand.interval_arrivals()
        belief = _belief_on(counts, 5)
        state = SortationTwin(scenario, demand, seed=1).site_state()
        arrivals = np.zeros_like(state.arrivals)
        arrivals[0] = counts[5]
        planned = belief.plan_state(replace(state, interval_index=6, arrivals=arrivals))
        assert planned.plan_trust == belief.trust()
        assert low <= planned.plan_trust <= high
        obs = observe(planned, FeatureScale.of(scenario))
        assert np.allclose(obs[:, col], planned.plan_trust)


def test_the_update_is_causal_and_repeats_are_ignored() -> None:
    scenario = load_scenario("large")
    groups = default_groups(scenario)
    counts = sample_day(groups, 7, scenario, seed=9).interval_arrivals()
    belief = _belief_on(counts, 4)
    planned = belief.share(4)
    future = counts.copy()
    future[4:] = 0  # what happens later cannot change the plan made now
    again = _belief_on(future, 4)
    assert np.array_equal(again.share(4), planned)
    belief.observe(2, counts[2] * 10)  # an older interval again: ignored
    assert np.array_equal(belief.share(4), planned)
    restored = _belief_on(counts, 0)
    restored.restore(belief.to_dict())
    assert np.array_equal(restored.share(4), planned)
