"""Live policy operations through the real broker and a real worker process: a worker's
``--policy`` shows as a ``worker-default`` route a rollback can return to, a route swaps the
policy at the next interval boundary while the worker runs, a shadow decides on the shadow topic
only, a rollback is one command that restores the earlier shadows too, a bad canary is rolled
back by its gate within two intervals of its first failing check (and ``policy rollback`` does
not serve it again), a good one is promoted, two runs of one date are reported apart, and
``policy history`` shows it all from Kafka.

Each test serves its own site (a copy of the small scenario with a fresh site id), so routes on
the compacted control topic never reach another test's worker.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from chuteflow.cli import main
from contracts.codec import decode
from contracts.control import CanaryGate, CanaryState, PolicyRef
from contracts.events import AllocationDecided
from contracts.topics import DEAD_LETTER, SHADOW
from decision.artifacts import inspect_artifact
from decision.features import N_FEATURES
from floor.daytypes import default_groups
from floor.scenario import SCENARIO_DIR, Scenario, load_scenario
from replay.loop import ReplayResult, day_type_group, replay_day
from replay.workers import start_worker, stop_worker
from rollout.canary import canary_route
from rollout.exits import EXIT_FAILED, EXIT_PASSED
from rollout.history import served_history, spans
from rollout.observe import DayNotFound, read_site_day
from rollout.rollback import canary_checks
from rollout.shadow import compare
from rollout.watcher import GateWatcher, WatchResult
from stream.deadletter import original_value
from stream.policy_store import (
    ArtifactFetcher,
    read_report,
    read_settings,
    read_store,
    register_policy,
)
from stream.routing import new_route, publish_routes, read_routes
from tests.decision.test_artifacts import onnx_model
from tests.stream.readers import TopicReader
from twin.groups import sample_day

pytestmark = pytest.mark.kafka
SHIPPED = Path(__file__).resolve().parents[2] / "decision" / "policies" / "drmarl-small.onnx"


def _site_scenario(tmp: Path) -> Path:
    body = yaml.safe_load((SCENARIO_DIR / "small.yaml").read_text())
    body["site_id"] = f"site-live-{uuid.uuid4().hex[:8]}"
    path = tmp / f"{body['site_id']}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _register(bootstrap: str, name: str, data: bytes) -> PolicyRef:
    check = inspect_artifact(data, ["small"])
    existing = read_store(bootstrap).get(check.sha256)
    if existing is not None:  # registered by another test under its name
        return PolicyRef(name=existing.name, sha256=existing.sha256)
    extra: dict[str, Any] = {}
    if data == SHIPPED.read_bytes():  # as test_policy_store registers it, whichever runs first
        extra = {
            "settings": read_settings(SHIPPED.parent / "runs" / "drmarl-small" / "settings.json"),
            "report": read_report(SHIPPED.parent / "reports" / "small-evaluation.md"),
        }
    record, _ = register_policy(bootstrap, name, check, data, **extra)
    return PolicyRef(name=record.name, sha256=record.sha256)


def _starving_policy(levels: int) -> bytes:
    """Values that prefer zero chutes for every destination: a policy that idles the floor."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(onnx_model(N_FEATURES, levels))
    weight = model.graph.initializer[0]
    weight.CopyFrom(numpy_helper.from_array(np.zeros((N_FEATURES, levels), dtype=np.float32), "W"))
    bias = numpy_helper.from_array(-np.arange(levels, dtype=np.float32) * 100.0, "B")
    model.graph.initializer.append(bias)
    model.graph.node[0].output[0] = "raw"
    model.graph.node.append(onnx.helper.make_node("Add", ["raw", "B"], ["values"]))
    return bytes(model.SerializeToString())


@pytest.fixture()
def site(kafka_topics: str, tmp_path: Path) -> Iterator[tuple[str, Scenario]]:
    path = _site_scenario(tmp_path)
    process = start_worker(
        kafka_topics,
        [str(path)],
        tmp_path / "worker",
        app_id=f"live-{uuid.uuid4().hex[:8]}",
        extra=["--inference-deadline-ms", "2000"],
    )
    try:
        yield kafka_topics, load_scenario(path)
    finally:
        stop_worker(process)


GATE_SPEED = 900.0
"""Gated replays run 2 s per interval: the gate watcher is another thread that checks each close
after it happens, so its verdicts land within an interval only when an interval is much longer
than a check (at max speed it is ~0.15 s, and the verdict's interval measured the CI machine's
load; ``bench canary`` reports the full-speed figure)."""


def _replay(
    bootstrap: str,
    scenario: Scenario,
    on_allocation: Any,
    seed: int = 7,
    speed: float | None = None,
) -> Any:
    groups = default_groups(scenario)
    demand = sample_day(groups, 3, scenario, seed=seed)
    return replay_day(
        demand,
        seed,
        bootstrap,
        day_type_group(groups, demand),
        on_allocation=on_allocation,
        speed=speed,
    )


def test_swap_and_rollback_take_effect_at_the_next_interval_with_a_shadow_deciding_throughout(
    site: tuple[str, Scenario], capsys: pytest.CaptureFixture[str]
) -> None:
    bootstrap, scenario = site
    site_id = scenario.site_id
    # the worker's --policy shows as a route, and a rollback returns to it
    capsys.readouterr()
    assert main(["policy", "routes", "--json", "--bootstrap", bootstrap]) == 0
    shown = {r["site_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert shown[site_id]["action"] == "worker-default" and shown[site_id]["revision"] == 1
    assert shown[site_id]["serving"] == {"name": "proportional", "sha256": None}
    assert main(["policy", "route", "--site", site_id, "--serve", "static",
                 "--bootstrap", bootstrap]) == 0  # fmt: skip
    assert main(["policy", "rollback", "--site", site_id, "--bootstrap", bootstrap]) == 0
    printed = capsys.readouterr().out
    assert "restores proportional with shadows none, as in revision 1 (worker-default" in printed
    assert "revision 3 (rollback): proportional serves" in printed

    drmarl = _register(bootstrap, "drmarl-small", SHIPPED.read_bytes())
    first = new_route(
        read_routes(bootstrap)[site_id],
        site_id,
        serving=PolicyRef(name="proportional"),
        shadows=[drmarl],
        action="route",
    )
    assert first.revision == 4
    assert publish_routes(bootstrap, [first], wait_applied=True)[site_id].startswith("applied")
    shadow_reader = TopicReader(bootstrap, SHADOW)

    def operate(allocation: AllocationDecided) -> None:
        # issued during interval k (its allocation is out, its records not yet published)
        if allocation.interval_index == 3:  # static, and no shadow
            swap = new_route(
                read_routes(bootstrap)[site_id],
                site_id,
                serving=PolicyRef(name="static"),
                shadows=[],
                action="route",
            )
            assert publish_routes(bootstrap, [swap], wait_applied=True)[site_id].startswith(
                "applied"
            )
        if allocation.interval_index == 6:
            assert main(["policy", "rollback", "--site", site_id, "--bootstrap", bootstrap]) == 0

    capsys.readouterr()
    result = _replay(bootstrap, scenario, operate)
    printed = capsys.readouterr().out
    assert f"restores proportional with shadows {drmarl.label}, as in revision 4" in printed
    served = [(a.interval_index, a.policy_name, a.route_revision) for a in result.allocations]
    n = scenario.n_intervals
    assert [k for k, _, _ in served] == list(range(n))  # none missed, none twice
    assert served[:4] == [(k, "proportional", 4) for k in range(4)]
    assert served[4:7] == [(k, "static", 5) for k in range(4, 7)]
    assert served[7:] == [(k, "proportional", 6) for k in range(7, n)]

    expected = [*range(4), *range(7, n)]  # the rollback restored the shadow with the policy
    records = shadow_reader.read_until(
        lambda r: sum(k == site_id.encode() for k, _ in r) >= len(expected), timeout_s=10
    )
    shadow = [decode(v) for k, v in records if k == site_id.encode()]
    assert sorted(e.interval_index for e in shadow if isinstance(e, AllocationDecided)) == expected
    assert all(
        isinstance(e, AllocationDecided) and e.policy_sha256 == drmarl.sha256 for e in shadow
    )

    rows, routes = served_history(bootstrap, site_id)
    assert [(first_k, last_k, label, rev) for _, first_k, last_k, label, rev, _ in spans(rows)] == [
        (0, 3, "proportional", 4),
        (4, 6, "static", 5),
        (7, n - 1, "proportional", 6),
    ]
    assert [r.action for r in routes] == [
        "worker-default", "route", "rollback", "route", "route", "rollback",
    ]  # fmt: skip
    assert routes[-1].shadows == [drmarl]
    capsys.readouterr()
    assert main(["policy", "history", "--site", site_id, "--bootstrap", bootstrap]) == 0
    printed = capsys.readouterr().out
    assert "intervals 4-6: static (revision 5)" in printed

    # the shadow report: drmarl's own counterfactual day beside the floor's
    day = read_site_day(bootstrap, scenario)
    assert day.closed_through == n - 1
    report = compare(scenario, day, _fetch(bootstrap))
    labels = [row.label for row in report.rows]
    assert labels[0] == "floor (reported)" and any(drmarl.label in label for label in labels)
    assert report.rows[0].inducted == result.kpis.inducted
    assert report.twin_error is None  # two policies served


def _fetch(bootstrap: str) -> ArtifactFetcher:
    from stream.clients import as_client

    return ArtifactFetcher(as_client(bootstrap))


def _gated_replay(
    bootstrap: str,
    scenario: Scenario,
    candidate: PolicyRef,
    incumbent: PolicyRef,
    gate: CanaryGate,
    at: int,
) -> tuple[ReplayResult, WatchResult, GateWatcher]:
    """A replayed day on which ``candidate`` opens on canary during interval ``at``, as
    ``policy canary`` does it: the gate watcher catches up, then the route, then the watch (in
    a thread, while the day goes on)."""
    site_id = scenario.site_id
    watcher = GateWatcher(bootstrap, {site_id: scenario}, _fetch(bootstrap))
    outcome: list[WatchResult] = []
    thread = threading.Thread(
        target=lambda: outcome.append(watcher.run({site_id}, timeout_s=300)), daemon=True
    )

    def operate(allocation: AllocationDecided) -> None:
        if allocation.interval_index == at:
            watcher.start()
            current = read_routes(bootstrap)[site_id]
            state = CanaryState(
                incumbent=incumbent, gate=gate, started_revision=current.revision + 1
            )
            routed = canary_route(current, site_id, candidate, incumbent, state)
            assert publish_routes(bootstrap, [routed], wait_applied=True)[site_id].startswith(
                "applied"
            )
            thread.start()

    result = _replay(bootstrap, scenario, operate, speed=GATE_SPEED)
    thread.join(timeout=60)
    assert outcome, "the gate watcher did not finish"
    return result, outcome[0], watcher


def test_a_bad_canary_is_rolled_back_by_its_gate_and_not_served_again_by_a_rollback(
    site: tuple[str, Scenario], capsys: pytest.CaptureFixture[str]
) -> None:
    bootstrap, scenario = site
    site_id = scenario.site_id
    levels = scenario.max_chutes_per_destination + 1
    bad = _register(bootstrap, f"starve-{levels}", _starving_policy(levels))
    incumbent = PolicyRef(name="proportional")
    gate = CanaryGate(window_intervals=4, failure_limit=2, min_inductions=50)
    result, outcome, watcher = _gated_replay(bootstrap, scenario, bad, incumbent, gate, 1)
    assert outcome.code == EXIT_FAILED, outcome.message
    served = [(a.interval_index, a.policy_name, a.route_revision) for a in result.allocations]
    assert served[:2] == [(0, "proportional", 1), (1, "proportional", 1)]
    assert served[2][1] == bad.name  # the canary serves from the next interval
    failing = [c.interval for c in watcher.checks if c.checks and not c.passed]
    assert failing, f"no failing check: {watcher.checks}"
    after = [k for k, name, _ in served if name == bad.name and k > failing[0]]
    assert len(after) <= 2, f"served {after} after its first failing check {failing[0]}"
    rolled = [k for k, name, _ in served if k > 2 and name == "proportional"]
    assert rolled and all(name == "proportional" for k, name, _ in served if k >= rolled[0])
    route = read_routes(bootstrap)[site_id]
    assert route.action == "rollback" and route.serving == incumbent
    assert route.reason.startswith("canary gate failed")
    # every check is on the canary topic, the verdict with the rollback's revision
    published = canary_checks(bootstrap, site_id)
    assert [c.interval for c in published] == [c.interval for c in watcher.checks]
    assert published[-1].outcome == "fail" and published[-1].verdict_revision == route.revision

    # right after it, a rollback does not serve the failed candidate again
    capsys.readouterr()
    assert main(["policy", "rollback", "--site", site_id, "--bootstrap", bootstrap]) == 2
    err = capsys.readouterr().err
    assert f"no earlier policy than proportional (passed over {bad.label}" in err, err
    assert read_routes(bootstrap)[site_id].revision == route.revision
    assert main(["policy", "rollback", "--site", site_id, "--force", "--bootstrap", bootstrap]) == 0
    assert read_routes(bootstrap)[site_id].serving == bad  # forced: the operator's call

    # a route naming a policy the worker cannot load is refused; the site keeps serving
    current = read_routes(bootstrap)[site_id]
    ghost = new_route(
        current, site_id, serving=PolicyRef(name="ghost", sha256="0" * 64), action="route"
    )
    dead = TopicReader(bootstrap, DEAD_LETTER)
    answer = publish_routes(bootstrap, [ghost], wait_applied=True)[site_id]
    assert answer.startswith(f"refused: policy_refused: route revision {ghost.revision}"), answer
    letters = dead.read_until(lambda r: any(k == site_id.encode() for k, _ in r), timeout_s=10)
    reasons = [original_value(v)[0] for k, v in letters if k == site_id.encode()]
    assert any(r.startswith(f"policy_refused: route revision {ghost.revision}") for r in reasons)


def test_a_good_canary_is_promoted(site: tuple[str, Scenario]) -> None:
    bootstrap, scenario = site
    site_id = scenario.site_id
    incumbent = PolicyRef(name="static")
    base = new_route(read_routes(bootstrap)[site_id], site_id, serving=incumbent, action="route")
    assert publish_routes(bootstrap, [base], wait_applied=True)[site_id].startswith("applied")
    candidate = PolicyRef(name="proportional")
    gate = CanaryGate(window_intervals=3, failure_limit=2, min_inductions=50)
    result, outcome, watcher = _gated_replay(bootstrap, scenario, candidate, incumbent, gate, 1)
    assert outcome.code == EXIT_PASSED, outcome.message
    assert [c.outcome for c in watcher.checks][-1] == "pass"
    assert "fail" not in [c.outcome for c in watcher.checks]
    route = read_routes(bootstrap)[site_id]
    assert route.action == "promote" and route.serving == candidate and route.canary is None
    served = [a.policy_name for a in result.allocations]
    assert served[:2] == ["static", "static"] and set(served[2:]) == {"proportional"}
    rows, _ = served_history(bootstrap, site_id)
    assert rows[-1].route_revision == 4  # the promotion's revision serves at the end
    assert json.loads(route.model_dump_json())["reason"].startswith("canary gate passed")


def test_two_runs_of_one_date_are_reported_apart(site: tuple[str, Scenario]) -> None:
    """The same date replayed twice back to back: each run's report is its own replay's KPIs
    exactly; the date alone is ambiguous and says which runs it names."""
    bootstrap, scenario = site
    groups = default_groups(scenario)
    first = sample_day(groups, 3, scenario, seed=7)
    second = sample_day(groups, 5, scenario, seed=8)
    second = type(second)(
        scenario=second.scenario,
        arrivals=second.arrivals,
        expected_share=second.expected_share,
        day_start=first.day_start,  # the same date
        label=second.label,
    )
    results = [
        replay_day(demand, seed, bootstrap, day_type_group(groups, demand))
        for demand, seed in ((first, 7), (second, 8))
    ]
    assert results[0].kpis.inducted != results[1].kpis.inducted
    for result in results:
        day = read_site_day(bootstrap, scenario, day_run=result.day)
        assert day.day_key == result.day and day.floor is not None
        assert int(day.floor.first_inductions.sum()) == result.kpis.inducted
        assert int(day.floor.recirculated.sum()) == result.kpis.recirculated
        assert int(day.floor.first_recirculations.sum()) == result.kpis.recirculation_amount
        assert int(day.floor.sorted.sum()) == result.kpis.sorted
        assert sorted(day.allocations) == list(range(scenario.n_intervals))
    with pytest.raises(DayNotFound, match="names 2 day runs"):
        read_site_day(bootstrap, scenario, first.day_start.date().isoformat())
    latest = read_site_day(bootstrap, scenario)
    assert latest.day_key == results[1].day
