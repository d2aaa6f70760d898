"""The gate's state machine in memory, on the contract events a twin day emits: each interval is
checked as it closes, its rates equal the shadow report's (floor counts, incumbent twin) on the
same events, the verdict follows the gate's rule, and a failure writes the rollback route with
the shadows the site had; floor records read before their ``day_started`` still count."""

from __future__ import annotations

from contracts.control import CanaryGate, CanaryState, PolicyRef
from contracts.events import AllocationDecided, DayStarted, Envelope, IntervalClosed
from contracts.topics import INTERVALS, TOPIC_FOR_EVENT
from decision.build import build_engine
from floor.daytypes import default_groups
from floor.scenario import load_scenario
from floor.site import load_site
from rollout.canary import canary_route
from rollout.gate import GateState, Verdict
from rollout.observe import SiteDay, floor_counts
from rollout.shadow import compare
from stream.routing import new_route
from twin.closed_loop import run_day
from twin.groups import sample_day


def _topic(event: Envelope) -> str:
    return TOPIC_FOR_EVENT[str(getattr(event, "event_type"))].name  # noqa: B009


def _no_fetch(ref: PolicyRef) -> object:
    raise AssertionError(f"built-ins only: {ref}")


def test_each_closed_interval_is_checked_like_the_shadow_report_and_a_failure_rolls_back() -> None:
    scenario = load_scenario("small")
    site_id = scenario.site_id
    demand = sample_day(default_groups(scenario), 3, scenario, seed=7)
    events: list[Envelope] = []
    run_day(build_engine(load_site(scenario), "static"), demand, seed=7, emit=events.append)
    started = DayStarted(
        event_id="day-run-1",
        event_time=demand.day_start,
        site_id=site_id,
        day_start=demand.day_start,
        day_type_group=3,
    )
    day_key = started.day_key()
    incumbent, candidate = PolicyRef(name="proportional"), PolicyRef(name="static")
    base = new_route(None, site_id, serving=incumbent, shadows=[], action="route")
    gate = CanaryGate(
        window_intervals=6, failure_limit=2, min_inductions=50, max_ratio=0.5, slack=0
    )
    state_ = CanaryState(incumbent=incumbent, gate=gate, started_revision=2)
    canary = canary_route(base, site_id, candidate, incumbent, state_)
    state = GateState({site_id: scenario}, _no_fetch, stall_s=3600.0)  # type: ignore[arg-type]
    state.route(base)
    state.route(canary)
    floor_events = [e for e in events if not isinstance(e, AllocationDecided | IntervalClosed)]
    early, rest = floor_events[:5], events  # read before their day_started
    stamp = 1_000
    for event in early:
        state.record(_topic(event), stamp + 1, event)
    state.record(INTERVALS.name, stamp, started)
    verdicts: list[Verdict] = []
    seen: list[Envelope] = []
    for event in rest:
        stamp += 1
        if isinstance(event, AllocationDecided):
            _, _, index, label = event.decision_id.split("/")
            event = event.model_copy(
                update={"decision_id": f"{site_id}/{day_key}/{index}/{label}", "route_revision": 2}
            )
        elif not isinstance(event, IntervalClosed):
            seen.append(event)
            if event in early:
                continue
        state.record(_topic(event), stamp, event)
        if isinstance(event, IntervalClosed):
            got = state.ready()
            assert state.days[site_id].checked_through == event.interval_index
            verdicts += got
            if not got:
                continue
            k = event.interval_index
            day = SiteDay(site_id, day_key, demand.day_start, 3, list(seen), k, {}, {})
            day.floor = floor_counts(scenario, day)
            batch = compare(scenario, day, _no_fetch, extra=[incumbent], through=k)  # type: ignore[arg-type]
            run = batch.runs["proportional"]
            check = got[-1].check
            assert check.interval == k and check.first_interval == 0
            assert check.inducted == int(day.floor.first_inductions[: k + 1].sum())
            assert check.canary_rate == int(day.floor.recirculated[: k + 1].sum()) / check.inducted
            expected = int(run.recirculated.sum()) / int(run.first_inductions.sum())
            assert check.incumbent_rate == expected
            assert check.passed == (check.canary_rate <= 0.5 * expected)
        if site_id not in state.canaries:
            break
    assert len(verdicts) >= 2, "no check made"
    last = verdicts[-1]
    assert [v.check.outcome for v in verdicts][:-1] == ["pending"] * (len(verdicts) - 1)
    assert last.check.outcome == "fail" and last.check.failures == 2
    (route,) = last.routes
    assert route.action == "rollback" and route.serving == incumbent
    assert route.revision == 3 and route.reason.startswith("canary gate failed")
    assert last.check.verdict_revision == 3


def test_a_prepared_incumbent_twin_follows_the_day_so_a_mid_day_canary_replays_nothing() -> None:
    """``prepare`` (``policy canary`` before it writes the route) builds the incumbent's twin
    and steps it as intervals close with no canary open; the canary route then adopts it as it
    is (nothing replayed between a close and its check) and the checks stay exactly
    ``compare``'s over the canary's window."""
    scenario = load_scenario("small")
    site_id = scenario.site_id
    demand = sample_day(default_groups(scenario), 3, scenario, seed=5)
    events: list[Envelope] = []
    run_day(build_engine(load_site(scenario), "static"), demand, seed=5, emit=events.append)
    started = DayStarted(
        event_id="day-run-2",
        event_time=demand.day_start,
        site_id=site_id,
        day_start=demand.day_start,
        day_type_group=3,
    )
    day_key = started.day_key()
    incumbent, candidate = PolicyRef(name="proportional"), PolicyRef(name="static")
    base = new_route(None, site_id, serving=incumbent, shadows=[], action="route")
    gate = CanaryGate(window_intervals=4, failure_limit=4, min_inductions=1, max_ratio=5.0)
    canary = canary_route(
        base,
        site_id,
        candidate,
        incumbent,
        CanaryState(incumbent=incumbent, gate=gate, started_revision=2),
    )
    state = GateState({site_id: scenario}, _no_fetch, stall_s=3600.0)  # type: ignore[arg-type]
    state.route(base)
    state.prepare(site_id, incumbent)  # before any day: built when the day starts
    assert site_id not in state.twins
    state.record(INTERVALS.name, 0, started)
    twin = state.twins[site_id][2]
    opened_at, checks, seen = 3, [], []
    stamp = 0
    for event in events:
        stamp += 1
        if isinstance(event, AllocationDecided):
            if event.interval_index == opened_at:
                state.route(canary)
                # the twin was current: the canary holds it as is, nothing replayed
                assert state.canaries[site_id].twin is twin and twin.simulated == opened_at
            _, _, index, label = event.decision_id.split("/")
            revision = 2 if event.interval_index >= opened_at else 1
            event = event.model_copy(
                update={
                    "decision_id": f"{site_id}/{day_key}/{index}/{label}",
                    "route_revision": revision,
                }
            )
        elif not isinstance(event, IntervalClosed):
            seen.append(event)
        state.record(_topic(event), stamp, event)
        if isinstance(event, IntervalClosed):
            got = state.ready()
            k = event.interval_index
            assert twin.simulated == k + 1  # stepped at each close, with or without a canary
            if k < opened_at:
                assert not got
                continue
            (verdict,) = got
            assert verdict.close_timestamp_ms == stamp
            day = SiteDay(site_id, day_key, demand.day_start, 3, list(seen), k, {}, {})
            day.floor = floor_counts(scenario, day)
            run = compare(scenario, day, _no_fetch, extra=[incumbent], through=k).runs[
                "proportional"
            ]  # type: ignore[arg-type]
            window = slice(opened_at, k + 1)
            expected = int(run.recirculated[window].sum()) / int(run.first_inductions[window].sum())
            assert verdict.check.first_interval == opened_at
            assert verdict.check.incumbent_rate == expected
            checks.append(verdict.check)
            if k >= opened_at + 2:
                break
    assert len(checks) == 3 and twin.restarts == 0
