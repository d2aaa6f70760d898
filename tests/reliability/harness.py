"""Faults against a real broker: a worker killed, stopped, joined or left, the broker restarted,
hostile records mixed in, all in the middle of a replayed day; then the day is audited.

What "survived" means (issue: a worker that survives):

- **KPIs** of the replayed day equal those of the uninterrupted in-process run of the same day
  (``twin.closed_loop.run_day`` with the same day key): every allocation the floor applied was
  the one an uninterrupted worker would have made.
- **Allocations** on the topic, read back independently: every interval of the day has one,
  and all records of one (site, day, interval) have the same id and the same content (a
  re-publish after a crash is allowed, a conflicting one is not).
- **Hand-over**: seconds from the fault to the next allocation the floor received.

Each scenario gets its own broker (``localkafka``, free port, own state dir), so a broker
restart affects nobody else and a successor worker reads nothing but this day.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition

from contracts.codec import decode
from contracts.events import AllocationDecided
from contracts.topics import ALL_TOPICS, ALLOCATIONS
from decision.build import build_engine
from floor.daytypes import default_groups
from floor.scenario import load_scenario
from floor.site import load_site
from localkafka import broker_down, broker_up
from replay.loop import ReplayResult, day_type_group, replay_day, replay_day_key
from replay.workers import start_worker, stop_worker
from stream.admin import ensure_topics
from stream.processor import INPUT_TOPICS
from tests.stream.readers import TopicReader
from twin.closed_loop import run_day
from twin.groups import sample_day

MODES = ("kill9", "sigterm", "broker", "rebalance")


@dataclass
class Broker:
    """A broker this harness owns: it can be stopped and started again on the same port."""

    state: Path
    port: int = 0
    bootstrap: str = ""

    def up(self) -> None:
        self.bootstrap = broker_up(port=self.port, state_dir=self.state, timeout=90.0)
        self.port = int(self.bootstrap.rsplit(":", 1)[1])
        ensure_topics(self.bootstrap)
        wait_leaders(self.bootstrap)

    def down(self) -> None:
        broker_down(state_dir=self.state)


@contextlib.contextmanager
def own_broker(state: Path) -> Iterator[Broker]:
    broker = Broker(state)
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


@dataclass
class FaultResult:
    mode: str
    scenario: str
    group: int
    seed: int
    fault_at: int
    kpis_equal: bool
    kpi_diff: dict[str, tuple[object, object]]
    intervals: int
    lost_intervals: list[int]
    conflicting_intervals: list[int]
    republished: int
    handover_s: float | None
    wall_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def survived(self) -> bool:
        return self.kpis_equal and not self.lost_intervals and not self.conflicting_intervals

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "survived": self.survived}, sort_keys=True)


def wait_leaders(bootstrap: str, timeout_s: float = 30.0) -> None:
    """Until every partition of every topic has a leader (fresh topics take a moment)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "rel-leaders"})
    deadline = time.monotonic() + timeout_s
    try:
        for spec in ALL_TOPICS:
            for p in range(spec.partitions):
                while True:
                    try:
                        consumer.get_watermark_offsets(TopicPartition(spec.name, p), timeout=5)
                        break
                    except KafkaException:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
    finally:
        consumer.close()


def wait_committed(bootstrap: str, group_id: str, timeout_s: float = 30.0) -> None:
    """Until the worker's group has a committed offset on every input partition: a successor
    then resumes from the commit (not from 'latest', which would skip the day)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id})
    partitions = [
        TopicPartition(spec.name, p) for spec in INPUT_TOPICS for p in range(spec.partitions)
    ]
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            committed = consumer.committed(partitions, timeout=10)
            if all(tp.offset >= 0 for tp in committed):
                return
            time.sleep(0.3)
    finally:
        consumer.close()
    raise AssertionError(f"group {group_id} committed no offsets within {timeout_s:g} s")


def audit(
    records: list[tuple[bytes, bytes]], site_id: str, day: str, n_intervals: int
) -> tuple[list[int], list[int], int]:
    """(lost intervals, intervals with conflicting records, records published again)."""
    by_interval: dict[int, list[AllocationDecided]] = {}
    for key, value in records:
        if key != site_id.encode():
            continue
        event = decode(value)
        if isinstance(event, AllocationDecided) and f"/{day}/" in event.decision_id:
            by_interval.setdefault(event.interval_index, []).append(event)
    lost = [k for k in range(n_intervals) if k not in by_interval]
    conflicting = [
        k
        for k, events in sorted(by_interval.items())
        if len({e.model_dump_json() for e in events}) > 1
    ]
    republished = sum(len(events) - 1 for events in by_interval.values())
    return lost, conflicting, republished


def run_fault(
    broker: Broker,
    mode: str,
    workdir: Path,
    *,
    scenario_name: str = "small",
    group: int = 3,
    seed: int = 1,
    fault_at: int = 3,
) -> FaultResult:
    """Replay one day with a fault after the allocation of interval ``fault_at``; audit it."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} not in {MODES}")
    scenario = load_scenario(scenario_name)
    groups = default_groups(scenario)
    demand = sample_day(groups, group, scenario, seed=seed)
    run_id = f"{mode}-{uuid.uuid4().hex[:8]}"
    day = replay_day_key(scenario.site_id, demand, run_id)
    reference = run_day(build_engine(load_site(scenario), "proportional"), demand, seed, day=day)

    app_id = f"rel-{run_id}"
    slot = ["--instance-id", f"{app_id}-slot0"]
    first = start_worker(
        broker.bootstrap, [scenario_name], workdir / "w1", app_id=app_id, extra=slot
    )
    processes: list[subprocess.Popen[bytes]] = [first]
    notes: list[str] = []
    reader = TopicReader(broker.bootstrap, ALLOCATIONS)
    received: dict[int, float] = {}
    reached = threading.Event()
    outcome: dict[str, ReplayResult | BaseException] = {}

    def on_allocation(allocation: AllocationDecided) -> None:
        received.setdefault(allocation.interval_index, time.monotonic())
        if allocation.interval_index >= fault_at:
            reached.set()

    def replay() -> None:
        try:
            outcome["result"] = replay_day(
                demand,
                seed,
                broker.bootstrap,
                day_type_group(groups, demand),
                run_id=run_id,
                allocation_timeout_s=120.0,
                on_allocation=on_allocation,
            )
        except BaseException as error:  # reported by the caller's assertion
            outcome["error"] = error
        finally:
            reached.set()

    started = time.monotonic()
    try:
        wait_committed(broker.bootstrap, app_id)
        thread = threading.Thread(target=replay, daemon=True)
        thread.start()
        reached.wait(300)
        fault_time = time.monotonic()
        if mode in ("kill9", "sigterm"):
            if mode == "kill9":
                os.kill(first.pid, signal.SIGKILL)
                first.wait(10)
            else:
                stop_worker(first)
            processes.append(
                start_worker(
                    broker.bootstrap,
                    [scenario_name],
                    workdir / "w2",
                    app_id=app_id,
                    extra=slot,
                )
            )
        elif mode == "broker":
            broker.down()
            time.sleep(1.0)
            broker.up()
        else:  # rebalance: a second worker joins (dynamic member), stays, then leaves cleanly
            joiner = start_worker(broker.bootstrap, [scenario_name], workdir / "w2", app_id=app_id)
            processes.append(joiner)
            time.sleep(3.0)
            stop_worker(joiner)
        thread.join(600)
        if thread.is_alive():
            notes.append("replay still running after 600 s")
        after = [t for k, t in received.items() if k > fault_at]
        handover = round(min(after) - fault_time, 2) if after else None
        records = reader.read_until(lambda r: False, timeout_s=2.0)
    finally:
        reader.close()
        for process in processes:
            stop_worker(process)
    error = outcome.get("error")
    if isinstance(error, BaseException):
        logs = "\n".join(
            f"--- {log}:\n{log.read_text(errors='replace')[-2000:]}"
            for log in sorted(workdir.glob("w*/*.log"))
        )
        raise AssertionError(f"{mode}: replay failed: {error}\n{logs}") from error
    result = outcome["result"]
    assert isinstance(result, ReplayResult)
    ours, theirs = result.kpis.to_dict(), reference.kpis.to_dict()
    lost, conflicting, republished = audit(records, scenario.site_id, day, scenario.n_intervals)
    for k in conflicting:
        versions = {
            event.model_dump_json(): event
            for key, value in records
            if key == scenario.site_id.encode()
            and isinstance(event := decode(value), AllocationDecided)
            and event.interval_index == k
            and f"/{day}/" in event.decision_id
        }
        first, *others = versions.values()
        for other in others:
            moved = {
                d: (first.chutes_per_destination.get(d), n)
                for d, n in other.chutes_per_destination.items()
                if first.chutes_per_destination.get(d) != n
            }
            notes.append(
                f"interval {k}: {first.solver_status} vs {other.solver_status}, counts {moved}"
            )
    return FaultResult(
        mode=mode,
        scenario=scenario_name,
        group=group,
        seed=seed,
        fault_at=fault_at,
        kpis_equal=ours == theirs,
        kpi_diff={k: (theirs[k], ours[k]) for k in theirs if theirs[k] != ours.get(k)},
        intervals=scenario.n_intervals,
        lost_intervals=lost,
        conflicting_intervals=conflicting,
        republished=republished,
        handover_s=handover,
        wall_s=round(time.monotonic() - started, 2),
        notes=notes,
    )
