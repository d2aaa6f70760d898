"""``policy rollback``'s choice, without Kafka: the policy before the current one with the
shadows it had, never a version a canary gate failed (unless forced), and a worker's default
route is somewhere to go back to."""

from __future__ import annotations

import pytest

from contracts.control import CanaryGate, CanaryState, PolicyRef, PolicyRoute
from rollout.canary import canary_route, rollback_route
from rollout.rollback import NoRollback, failed_by_gate, plan_rollback
from stream.routing import new_route, worker_default_routes

PROPORTIONAL, STATIC = PolicyRef(name="proportional"), PolicyRef(name="static")
BAD = PolicyRef(name="bad", sha256="b" * 64)
SHADOW = PolicyRef(name="drmarl", sha256="d" * 64)


def _history() -> list[PolicyRoute]:
    (default,) = worker_default_routes({}, {"s": PROPORTIONAL}, "host/1")
    assert default.action == "worker-default" and default.revision == 1
    routed = new_route(default, "s", serving=PROPORTIONAL, shadows=[SHADOW], action="route")
    state = CanaryState(incumbent=PROPORTIONAL, gate=CanaryGate(), started_revision=3)
    canary = canary_route(routed, "s", BAD, PROPORTIONAL, state)
    failed = rollback_route(canary, "canary gate failed 2x (limit 2): ...")
    return [default, routed, canary, failed]


def test_a_rollback_after_a_failed_gate_does_not_serve_the_failed_candidate() -> None:
    history = _history()
    current = history[-1]
    assert current.serving == PROPORTIONAL and current.shadows == [SHADOW]
    assert failed_by_gate(history, []) == {BAD.key}
    with pytest.raises(NoRollback, match=r"no earlier policy than proportional \(passed over bad@"):
        plan_rollback(current, history, [], "operator")
    forced = plan_rollback(current, history, [], "operator", force=True)
    assert forced.route.serving == BAD and forced.route.revision == current.revision + 1
    assert "restores bad@bbbbbbbbbbbb" in forced.describe()


def test_a_rollback_restores_the_earlier_shadows_and_can_return_to_the_worker_default() -> None:
    history = _history()[:2]
    swapped = new_route(history[-1], "s", serving=STATIC, shadows=[], action="route")
    plan = plan_rollback(swapped, [*history, swapped], [], "operator")
    assert plan.route.serving == PROPORTIONAL and plan.route.shadows == [SHADOW]
    assert plan.restores is not None and plan.restores.revision == 2
    assert "restores proportional with shadows drmarl@dddddddddddd, as in revision 2" in (
        plan.describe()
    )
    only_default = [history[0]]
    swapped = new_route(history[0], "s", serving=STATIC, action="route")
    back = plan_rollback(swapped, [*only_default, swapped], [], "operator")
    assert back.route.serving == PROPORTIONAL and back.restores == history[0]
    # a site that already has a route gets no default, nor one whose policy no route can name
    assert worker_default_routes({"s": swapped}, {"s": PROPORTIONAL, "t": None}, "w") == []


def test_a_shadow_change_during_a_canary_keeps_it_open_and_its_incumbent_in_shadow() -> None:
    """``policy shadow`` (and ``site onboard --register``) wrote the route without its canary:
    the candidate went on serving with no gate and nothing to compare it with."""
    from contracts.control import MAX_SHADOWS
    from floor.scenario import load_scenario
    from rollout.canary import shadow_route
    from rollout.gate import GateState

    canary = _history()[2]
    assert canary.canary is not None and canary.shadows == [PROPORTIONAL, SHADOW]
    other = PolicyRef(name="other", sha256="e" * 64)
    changed = shadow_route(canary, [other, other], "operator")
    assert changed.canary == canary.canary and changed.serving == BAD
    assert changed.shadows == [PROPORTIONAL, other]  # the incumbent kept, a repeat once
    assert changed.action == "shadow" and changed.revision == canary.revision + 1
    # the gate goes on watching it, where it read the old route as the canary's end
    gate = GateState({"s": load_scenario("small")}, fetch=lambda ref: pytest.fail("no fetch"))
    gate.route(canary)
    assert gate.route(changed) == [] and "s" in gate.canaries and gate.ended == {}
    with pytest.raises(ValueError, match="bad@bbbbbbbbbbbb serves it"):
        shadow_route(canary, [BAD], "operator")
    many = [PolicyRef(name=f"p{i}", sha256=f"{i}" * 64) for i in range(MAX_SHADOWS)]
    with pytest.raises(ValueError, match=r"5 shadows \(the canary's incumbent proportional"):
        shadow_route(canary, many, "operator")
    # with no canary, the shadows are what was asked
    assert shadow_route(_history()[1], [other], "x").shadows == [other]
