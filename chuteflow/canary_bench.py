"""``chuteflow bench canary`` (here, not in ``rollout/``: it drives replay and a worker, a layer
above both): how many intervals a bad candidate serves after its gate's first
failing check, on a real broker and worker, with the day replayed at full speed.

The candidate registers cleanly (a valid ONNX policy of the right shape) but prefers the
fewest chutes for every destination, so most packages recirculate. It is opened on canary
against proportional twice, each time on a fresh copy of the site, the way an operator does:
``chuteflow policy canary`` as its own process (its own GIL), started before the day (the gate
waits for the day's ``day_started``) or when the replay reaches mid-day (it catches up with the
half day and its route goes out while the replay waits: seconds, where a real interval is
minutes). The figures come from the topics: the gate's checks (``chuteflow.canary.v1``), the
closes and the allocations. The figure is the number of intervals the candidate served after
the interval of its first failing check (the issue's bar: at most 2), and the gate's latency
per check (``CanaryCheck.latency_ms``: the close read -> the check made; and the close
record's Kafka timestamp -> the check record's).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from contracts.codec import decode
from contracts.control import CanaryCheck, CanaryGate, PolicyRef
from contracts.events import AllocationDecided, IntervalClosed
from contracts.topics import CANARY, INTERVALS, TopicSpec, message_key
from decision.artifacts import inspect_artifact
from decision.features import N_FEATURES
from floor.daytypes import default_groups
from floor.scenario import SCENARIO_DIR, Scenario, load_scenario
from replay.loop import day_type_group, replay_day
from replay.workers import chuteflow_command, start_worker, stop_worker
from stream.admin import ensure_topics
from stream.clients import KafkaClientConfig, env_without_kafka_security
from stream.policy_store import register_policy
from stream.topic_reader import read_to_end, site_partition
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


class _CanaryProcess:
    """``chuteflow policy canary`` as an operator runs it: its own process (its own GIL, so the
    watcher's catch-up with a half day does not slow the replay, nor the replay the watcher),
    its output read line by line to see when its route is out."""

    def __init__(
        self, client: KafkaClientConfig, path: Path, site_id: str, bad: PolicyRef, gate: CanaryGate
    ) -> None:
        command = [chuteflow_command(), "policy", "canary", f"sha256:{bad.sha256}"]
        command += ["--site", site_id, "--incumbent", "proportional", "--scenario", str(path)]
        command += ["--window", str(gate.window_intervals), "--max-ratio", str(gate.max_ratio)]
        command += ["--slack", str(gate.slack), "--failure-limit", str(gate.failure_limit)]
        command += ["--min-inductions", str(gate.min_inductions), "--timeout-seconds", "1800"]
        command += ["--bootstrap", client.bootstrap]
        # the connection as KAFKA_* variables (as workers get it); unbuffered, so each line
        # (the route's "applied" line above all) arrives as it is printed
        env = env_without_kafka_security(os.environ) | client.to_env() | {"PYTHONUNBUFFERED": "1"}
        self.site_id = site_id
        self.lines: list[str] = []
        self.route_out = threading.Event()
        self.started = time.monotonic()
        self.route_s: float | None = None
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith(f"{self.site_id}: revision") and not self.route_out.is_set():
                self.route_s = time.monotonic() - self.started
                self.route_out.set()

    def wait_route(self, timeout_s: float) -> None:
        """Until the canary route is out (its worker applied it); the process's output if not."""
        deadline = time.monotonic() + timeout_s
        while not self.route_out.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._reader.join(timeout=5)
                tail = "\n".join(self.lines[-20:])
                raise RuntimeError(f"policy canary did not put its route out:\n{tail}")

    def finish(self, grace_s: float) -> int:
        """Its exit code: the gate's verdict (1: failed and rolled back), or, still watching
        after ``grace_s``, ended here (a negative code: the signal)."""
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
        return self.process.returncode


def _site_records(
    client: KafkaClientConfig, topic: TopicSpec, site_id: str, since_ms: int
) -> list[tuple[int, bytes]]:
    """(Kafka timestamp, value) of the site's records on ``topic`` since ``since_ms``."""
    key = message_key(site_id)
    records = read_to_end(
        client,
        [topic.name],
        partitions=[site_partition(site_id, topic.partitions)],
        since_ms=since_ms,
        timeout_s=60.0,
    )
    return [(r.timestamp_ms, r.value) for r in records if r.key == key and r.value is not None]


def _run(
    client: KafkaClientConfig,
    path: Path,
    scenario: Scenario,
    bad: PolicyRef,
    gate: CanaryGate,
    open_at: int | None,
    seed: int,
    group: int,
    run_for: int,
) -> dict[str, Any]:
    """One day with the canary opened before it (``open_at`` None: the day's first ``run_for``
    intervals replayed) or during interval ``open_at`` (the rest of the day); the figures come
    from the topics (the gate's checks, the closes, the allocations), as an operator sees them."""
    site_id = scenario.site_id
    since_ms = int(time.time() * 1000) - 1000
    canary: list[_CanaryProcess] = []
    opened_during: list[int] = []

    def operate(allocation: AllocationDecided) -> None:
        # mid-day: the floor waits for the opening (seconds, where a real interval is minutes;
        # a full-speed replay would otherwise end the day before the route is out), so the
        # candidate serves from the interval after this one
        if not canary and allocation.interval_index == open_at:
            canary.append(_CanaryProcess(client, path, site_id, bad, gate))
            canary[0].wait_route(timeout_s=180)
            opened_during.append(allocation.interval_index)

    if open_at is None:
        canary.append(_CanaryProcess(client, path, site_id, bad, gate))
        canary[0].wait_route(timeout_s=180)  # the route applied before the day starts
        opened_during.append(-1)
    groups = default_groups(scenario)
    demand = sample_day(groups, group, scenario, seed=seed)
    t0 = time.monotonic()
    try:
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
    finally:
        wall = time.monotonic() - t0
        code = canary[0].finish(grace_s=60.0) if canary else None
    served = [(a.interval_index, a.policy_name) for a in result.allocations]
    by_candidate = [k for k, name in served if name == bad.name]
    checks = [
        CanaryCheck.model_validate_json(value)
        for _, value in _site_records(client, CANARY, site_id, since_ms)
    ]
    stamps = [stamp for stamp, _ in _site_records(client, CANARY, site_id, since_ms)]
    closes: dict[int, int] = {}
    for stamp, value in _site_records(client, INTERVALS, site_id, since_ms):
        event = decode(value, INTERVALS)
        if isinstance(event, IntervalClosed):
            closes.setdefault(event.interval_index, stamp)
    made = [(c, s) for c, s in zip(checks, stamps, strict=True) if c.checks]
    failing = [c.interval for c, _ in made if not c.passed]
    latencies = [c.latency_ms for c, _ in made if c.latency_ms is not None]
    # from the close record's Kafka timestamp (the replay's write, as a WCS's) to the check's
    since_close = [s - closes[c.interval] for c, s in made if c.interval in closes]
    verdict = next((c for c in checks if c.outcome != "pending"), None)
    route_s = canary[0].route_s if canary else None
    return {
        "opened": "before the day" if open_at is None else f"during interval {open_at}",
        "candidate_served": f"{by_candidate[0]}-{by_candidate[-1]}" if by_candidate else "none",
        "first_failing_check": failing[0] if failing else None,
        "served_after_first_failing_check": (
            sum(k > failing[0] for k in by_candidate) if failing else None
        ),
        "verdict": None if verdict is None else f"{verdict.outcome} at interval {verdict.interval}",
        "exit_code": code,
        "check_latency_ms": [round(x, 1) for x in latencies],
        "check_latency_from_close_written_ms": [round(float(x), 1) for x in since_close],
        # the canary process's start to its route applied (imports, catch-up, publish)
        "watcher_catch_up_s": round(route_s, 2) if route_s is not None else None,
        # the interval whose allocation the route went out after (-1: before the day)
        "route_out_after_interval": opened_during[0] if opened_during else None,
        "canary_last_line": canary[0].lines[-1] if canary and canary[0].lines else None,
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
                runs.append(_run(client, path, scenario, bad, gate, at, seed, group, run_for))
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
