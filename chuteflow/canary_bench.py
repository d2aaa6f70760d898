"""``chuteflow bench canary`` (here, not in ``rollout/``: it drives replay and a worker, a layer
above both): how many intervals a bad candidate serves after its gate's first
failing check, on a real broker and worker, with the day replayed at full speed.

The candidate registers cleanly (a valid ONNX policy of the right shape) but prefers the
fewest chutes for every destination, so most packages recirculate. It is opened on canary
against proportional twice, each time on a fresh copy of the site: before the day (the gate
waits for the day's ``day_started``) and mid-day (opened from another thread while the replay
runs, as an operator would: the watcher catches up with the half day, then the route goes
out). The figure is the number of intervals the candidate served after the interval of its
first failing check (the issue's bar: at most 2), and the gate's latency per check (the
interval's close read -> the check and any verdict published).
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from contracts.control import CanaryGate, CanaryState, PolicyRef
from contracts.events import AllocationDecided
from decision.artifacts import inspect_artifact
from decision.features import N_FEATURES
from floor.daytypes import default_groups
from floor.scenario import SCENARIO_DIR, Scenario, load_scenario
from replay.loop import day_type_group, replay_day
from replay.workers import start_worker, stop_worker
from rollout.canary import canary_route
from rollout.watcher import GateWatcher, WatchResult
from stream.admin import ensure_topics
from stream.clients import KafkaClientConfig
from stream.policy_store import ArtifactFetcher, register_policy
from stream.routing import publish_routes, read_routes
from twin.groups import sample_day


def fewest_chutes_policy(levels: int) -> bytes:
    """An ONNX policy whose values prefer zero chutes for every destination: ``values = x W
    + b`` with ``W = 0`` and ``b = -100 k`` for ``k`` chutes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.zeros((N_FEATURES, levels), dtype=np.float32), "W")
    bias = numpy_helper.from_array(-np.arange(levels, dtype=np.float32) * 100.0, "B")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["observations", "W"], ["raw"]),
            helper.make_node("Add", ["raw", "B"], ["values"]),
        ],
        "fewest-chutes",
        [helper.make_tensor_value_info("observations", TensorProto.FLOAT, ["N", N_FEATURES])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["N", levels])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def _site_copy(scenario_name: str, folder: Path) -> Path:
    body = yaml.safe_load((SCENARIO_DIR / f"{scenario_name}.yaml").read_text())
    body["site_id"] = f"site-bench-{uuid.uuid4().hex[:8]}"
    path = folder / f"{body['site_id']}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _run(
    client: KafkaClientConfig,
    scenario: Scenario,
    bad: PolicyRef,
    gate: CanaryGate,
    open_at: int | None,
    seed: int,
    group: int,
    run_for: int,
) -> dict[str, Any]:
    """One day with the canary opened before it (``open_at`` None: the day's first ``run_for``
    intervals replayed) or during interval ``open_at`` (the rest of the day)."""
    site_id = scenario.site_id
    incumbent = PolicyRef(name="proportional")
    watcher = GateWatcher(client, {site_id: scenario}, ArtifactFetcher(client))
    outcome: list[WatchResult] = []
    opened: dict[str, float] = {}

    def open_canary() -> None:
        t0 = time.monotonic()
        watcher.start(prepare={site_id: incumbent})  # as `policy canary` does
        opened["catch_up_s"] = time.monotonic() - t0
        current = read_routes(client)[site_id]
        state = CanaryState(incumbent=incumbent, gate=gate, started_revision=current.revision + 1)
        routed = canary_route(current, site_id, bad, incumbent, state)
        publisher = threading.Thread(
            target=lambda: publish_routes(client, [routed], wait_applied=True), daemon=True
        )
        publisher.start()
        watcher.keep_up_while(publisher.is_alive)  # as `policy canary` does
        opened["route_s"] = time.monotonic() - t0
        outcome.append(watcher.run({site_id}, timeout_s=1800))

    opener = threading.Thread(target=open_canary, daemon=True)

    def operate(allocation: AllocationDecided) -> None:
        if allocation.interval_index == open_at:
            opener.start()

    if open_at is None:
        opener.start()
        while "route_s" not in opened and opener.is_alive():
            time.sleep(0.05)  # the route applied before the day starts
        if "route_s" not in opened:
            raise RuntimeError("the gate watcher did not start (see the error above)")
    groups = default_groups(scenario)
    demand = sample_day(groups, group, scenario, seed=seed)
    t0 = time.monotonic()
    result = replay_day(
        demand,
        seed,
        client,
        day_type_group(groups, demand),
        on_allocation=operate,
        # opened mid-day: the rest of the day (the opening itself takes its time while the
        # floor goes on); before the day: the first ``run_for`` intervals
        max_intervals=None if open_at is not None else min(scenario.n_intervals, run_for),
    )
    wall = time.monotonic() - t0
    opener.join(timeout=120)
    served = [(a.interval_index, a.policy_name) for a in result.allocations]
    by_candidate = [k for k, name in served if name == bad.name]
    failing = [c.interval for c in watcher.checks if c.checks and not c.passed]
    latencies = [c.latency_ms for c in watcher.checks if c.latency_ms is not None]
    since_close = watcher.since_close_ms
    verdict = next((c for c in watcher.checks if c.outcome != "pending"), None)
    return {
        "opened": "before the day" if open_at is None else f"during interval {open_at}",
        "candidate_served": f"{by_candidate[0]}-{by_candidate[-1]}" if by_candidate else "none",
        "first_failing_check": failing[0] if failing else None,
        "served_after_first_failing_check": (
            sum(k > failing[0] for k in by_candidate) if failing else None
        ),
        "verdict": None if verdict is None else f"{verdict.outcome} at interval {verdict.interval}",
        "exit_code": outcome[0].code if outcome else None,
        "check_latency_ms": [round(x, 1) for x in latencies],
        # from the close record's Kafka timestamp (the worker's write) to the check's send
        "check_latency_from_close_written_ms": [round(x, 1) for x in since_close],
        "watcher_catch_up_s": round(opened.get("catch_up_s", float("nan")), 2),
        "replay_wall_s": round(wall, 1),
        "intervals_replayed": len(served),
        "replay_s_per_interval": round(wall / max(len(served), 1), 3),
    }


def bench_canary(
    client: KafkaClientConfig,
    scenario_name: str = "large",
    *,
    seed: int = 0,
    group: int = 0,
    window: int = 12,
    run_for: int = 16,
) -> dict[str, Any]:
    """Both runs (opened before the day and mid-day) and their figures."""
    ensure_topics(client)
    levels = load_scenario(scenario_name).max_chutes_per_destination + 1
    data = fewest_chutes_policy(levels)
    record, _ = register_policy(
        client, "fewest-chutes", inspect_artifact(data, [scenario_name]), data
    )
    bad = PolicyRef(name=record.name, sha256=record.sha256)
    gate = CanaryGate(window_intervals=window)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for open_at in (None, "mid"):
            path = _site_copy(scenario_name, Path(tmp))
            scenario = load_scenario(path)
            at = None if open_at is None else scenario.n_intervals // 2
            worker = start_worker(
                client, [str(path)], Path(tmp) / "worker", app_id=f"bench-{uuid.uuid4().hex[:8]}"
            )
            try:
                runs.append(_run(client, scenario, bad, gate, at, seed, group, run_for))
            finally:
                stop_worker(worker)
    latencies = [x for run in runs for x in run["check_latency_ms"]]
    written = [x for run in runs for x in run["check_latency_from_close_written_ms"]]
    return {
        "scenario": scenario_name,
        "candidate": bad.label,
        "gate": f"window {window}, max_ratio {gate.max_ratio}, failure_limit {gate.failure_limit}",
        "runs": runs,
        "check_latency_ms_median": float(np.median(latencies)) if latencies else None,
        "check_latency_ms_max": max(latencies) if latencies else None,
        "check_latency_from_close_written_ms_median": (
            float(np.median(written)) if written else None
        ),
        "check_latency_from_close_written_ms_max": max(written) if written else None,
        "bar_met": all(
            r["served_after_first_failing_check"] is not None
            and r["served_after_first_failing_check"] <= 2
            for r in runs
        ),
    }


__all__ = ["bench_canary", "fewest_chutes_policy"]
