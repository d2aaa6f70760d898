"""The decision engine: one validated allocation per interval, whatever the policy outputs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decision.build import PolicyError, build_engine
from decision.engine import DecisionEngine
from decision.features import ObservationBatch
from decision.policies import OnnxPolicy
from decision.state import SiteState
from decision.validate import validate_allocation
from floor.daytypes import default_groups
from floor.guardrails import load_guardrails
from floor.plan import DayPlan
from floor.scenario import load_scenario
from floor.site import load_site
from twin.closed_loop import run_day
from twin.groups import sample_day


class _Scripted:
    """A policy that returns whatever the test hands it (NaN, wrong shape, an exception)."""

    name = "scripted"
    version = "t"

    def __init__(self, output: object) -> None:
        self.output = output

    def start_day(self, plan: DayPlan) -> None:
        return None

    def values(self, state: SiteState, observations: ObservationBatch) -> np.ndarray:
        if isinstance(self.output, Exception):
            raise self.output
        return np.asarray(self.output, dtype=np.float64)


def _engine(scenario_name: str, policy: object) -> DecisionEngine:
    scenario = load_scenario(scenario_name)
    return build_engine(load_site(scenario), policy)  # type: ignore[arg-type]


def _state_after(scenario_name: str, intervals: int, seed: int = 3) -> SiteState:
    """A realistic mid-day state: the twin run under proportional for a few intervals."""
    from twin.sim import SortationTwin

    scenario = load_scenario(scenario_name)
    day = sample_day(default_groups(scenario), 2, scenario, seed=seed)
    engine = build_engine(load_site(scenario, load_guardrails(scenario.name)), "proportional")
    from twin.closed_loop import day_plan

    engine.start_day(day_plan(day))
    twin = SortationTwin(scenario, day, seed=seed)
    for _ in range(intervals):
        state = twin.site_state()
        twin.run_interval(engine.decide(state, scenario.day_start, scenario.day_start).owner)
    return twin.site_state()


@pytest.mark.parametrize(
    "output",
    [RuntimeError("model crashed"), "shape", "nan", "posinf"],
)
def test_broken_policy_falls_back_to_a_valid_allocation(output: object) -> None:
    scenario = load_scenario("large")
    state = _state_after("large", 3)
    levels = scenario.max_chutes_per_destination + 1
    if output == "shape":
        output = np.zeros((3, 2))
    elif output == "nan":
        output = np.full((scenario.n_destinations, levels), np.nan)
    elif output == "posinf":
        output = np.full((scenario.n_destinations, levels), np.inf)
    engine = _engine("large", _Scripted(output))
    decision = engine.decide(state, scenario.day_start, scenario.day_start)
    assert decision.policy_error is not None
    assert decision.event.solver_status in ("fallback_previous", "fallback_repaired")
    assert not validate_allocation(
        decision.owner, decision.counts, engine.guardrails, state.chute_available, state.chute_owner
    )
    # the previous allocation is kept where it was valid: no chute is moved by a fallback
    assert decision.moves == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.floats(1e-3, 1e6))
def test_any_finite_policy_output_yields_a_guardrail_feasible_allocation(
    seed: int, magnitude: float
) -> None:
    scenario = load_scenario("small")
    state = _STATE_SMALL
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, magnitude, (scenario.n_destinations, 5))
    values[rng.random(values.shape) < 0.1] = -np.inf  # forbidden levels are allowed
    engine = _engine("small", _Scripted(values))
    decision = engine.decide(state, scenario.day_start, scenario.day_start)
    assert not validate_allocation(
        decision.owner, decision.counts, engine.guardrails, state.chute_available, state.chute_owner
    )
    assert int(decision.counts.sum()) <= int(state.chute_available.sum())
    assert decision.event.chutes_per_destination == {
        scenario.destinations[d]: int(decision.counts[d]) for d in range(scenario.n_destinations)
    }


_STATE_SMALL = _state_after("small", 2)


def test_allocation_event_carries_versions_and_a_stable_decision_id() -> None:
    scenario = load_scenario("large")
    state = _state_after("large", 2)
    engine = _engine("large", "proportional")
    share = np.full((scenario.n_intervals, 120), 1 / 120)
    engine.start_day(DayPlan(expected_share=share, day="2025-06-10.1a2b3c4d"))
    start = scenario.day_start + timedelta(minutes=10)
    first = engine.decide(state, start, start)
    again = engine.decide(state, start, start)
    expected = "site-large/2025-06-10.1a2b3c4d/2/proportional@1"
    assert first.event.decision_id == again.event.decision_id == expected
    engine.start_day(DayPlan(expected_share=share, day="2025-06-10.99999999"))
    assert engine.decide(state, start, start).event.decision_id != expected  # another run
    assert first.event.guardrail_version == engine.guardrails.version
    assert first.event.policy_name == "proportional"
    assert first.event.interval_index == 2
    assert len(first.event.chute_map) == int(first.counts.sum())


def test_same_day_and_seed_give_the_same_allocations() -> None:
    scenario = load_scenario("small")
    day = sample_day(default_groups(scenario), 4, scenario, seed=11)
    runs = [run_day(_engine("small", "proportional"), day, seed=5) for _ in range(2)]
    assert runs[0].kpis == runs[1].kpis
    for a, b in zip(runs[0].decisions, runs[1].decisions, strict=True):
        assert a.event == b.event


def test_onnx_policy_seam_serves_a_model_built_here(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from decision.features import N_FEATURES

    scenario = load_scenario("small")
    levels = scenario.max_chutes_per_destination + 1
    # values[d, k] = k * obs[d, 0]: prefers more chutes for destinations with recent arrivals
    weight = np.zeros((N_FEATURES, levels), dtype=np.float32)
    weight[0, :] = np.arange(levels, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["observations", "W"], ["values"])],
        "seam",
        [helper.make_tensor_value_info("observations", TensorProto.FLOAT, ["N", N_FEATURES])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["N", levels])],
        [numpy_helper.from_array(weight, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"policy_name": "seam", "policy_version": "7"})
    path = tmp_path / "seam.onnx"
    path.write_bytes(model.SerializeToString())
    onnx.checker.check_model(model)

    policy = OnnxPolicy(path, levels)
    assert (policy.name, policy.version) == ("seam", "7")
    state = _STATE_SMALL
    from decision.features import FeatureScale, observe

    obs = observe(state, FeatureScale.of(scenario))
    np.testing.assert_allclose(policy.values(state, obs), obs @ weight, rtol=1e-6)
    decision = _engine("small", policy).decide(state, scenario.day_start, scenario.day_start)
    assert decision.policy_error is None
    busiest = int(np.argmax(state.arrivals[0]))
    assert decision.counts[busiest] >= 1


def test_unknown_policy_name_is_a_clear_error() -> None:
    with pytest.raises(PolicyError, match="unknown policy"):
        build_engine(load_site("small"), "greedy-magic")


def test_build_engine_refuses_guardrails_of_another_site() -> None:
    from floor.guardrails import GuardrailError
    from floor.site import Site

    mismatched = Site(load_scenario("small"), load_guardrails("large"))
    with pytest.raises(GuardrailError, match="total_eject_chutes"):
        build_engine(mismatched, "proportional")
