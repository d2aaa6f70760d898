"""Several sites partition across workers: two workers of one consumer group share the sites.

Two worker processes (``chuteflow worker``) with the same ``--app-id`` serve the
same six sites: copies of the small scenario whose site ids are chosen so that their records
land on six different input partitions (every chuteflow producer partitions a keyed record
with Kafka's murmur2 default, ``contracts.topics.kafka_partition``). Whatever the
group's split of the six partitions, both workers then own sites.

Readiness is observed, not slept on: each worker rewrites its ready file after every rebalance
with its pid and input partitions, and the group has settled once the two files show disjoint
assignments covering every partition. A worker of a fresh group (``latest`` offsets) only
fixes a partition's start offset on its first fetch, after the ready file is written, so a
garbage probe is sent per site and input topic (again until it comes back) and the dead
letters show that every site's partitions are being consumed before any day is published.

Then one day per site is replayed in lockstep, all sites at once, and independent consumers
read the allocations and decisions-audit topics. Each audit record names the worker that
decided (``host/pid``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import pytest

from contracts.codec import decode
from contracts.events import AllocationDecided
from contracts.topics import (
    ALLOCATIONS,
    DEAD_LETTER,
    DECISIONS_AUDIT,
    PARTITIONS,
    kafka_partition,
    message_key,
)
from decision.build import build_engine
from floor.daytypes import default_groups
from floor.guardrails import load_guardrails
from floor.scenario import SCENARIO_DIR, Scenario, load_scenario
from floor.site import load_site
from replay.loop import ReplayResult, day_type_group, replay_day, replay_day_key
from replay.publisher import KafkaPublisher
from replay.workers import start_worker, stop_worker
from stream.processor import INPUT_TOPICS
from tests.stream.readers import TopicReader
from twin.closed_loop import DayRun, run_day
from twin.day import DayDemand
from twin.groups import sample_day

pytestmark = pytest.mark.kafka

PROBE = b"\xff two-workers probe"


def _partition(site_id: str) -> int:
    """The input partition of a site's records (the probes check the worker agrees)."""
    return kafka_partition(message_key(site_id), PARTITIONS)


def _one_site_per_partition(prefix: str = "site-pair-") -> dict[str, int]:
    """Site id -> partition, the first id of the prefix that lands on each partition."""
    sites: dict[str, int] = {}
    taken: set[int] = set()
    k = 0
    while len(taken) < PARTITIONS:
        site_id = f"{prefix}{k}"
        partition = _partition(site_id)
        if partition not in taken:
            taken.add(partition)
            sites[site_id] = partition
        k += 1
    return sites


SITES = _one_site_per_partition()


@dataclass
class Group:
    bootstrap: str
    processes: list[Popen[bytes]]
    ready_files: list[Path]
    logs: list[Path]

    def tail(self) -> str:
        return "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-2000:]}" for p in self.logs)


def _site_scenarios(directory: Path) -> dict[str, Path]:
    """A scenario YAML per site: the small scenario under another site id."""
    text = (SCENARIO_DIR / "small.yaml").read_text()
    assert text.count("site_id: site-small\n") == 1
    paths = {}
    for site_id in SITES:
        path = directory / f"{site_id}.yaml"
        path.write_text(text.replace("site_id: site-small\n", f"site_id: {site_id}\n"))
        paths[site_id] = path
    return paths


def _stop_all(processes: list[Popen[bytes]]) -> None:
    """SIGTERM to every worker at once (a lone member would rebalance), then reap each by PID."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
    for process in processes:
        stop_worker(process, timeout_s=10.0)


@pytest.fixture(scope="module")
def scenario_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _site_scenarios(tmp_path_factory.mktemp("sites"))


@pytest.fixture(scope="module")
def group(
    kafka_topics: str, scenario_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Group]:
    """Two workers, one consumer group, the same six sites; both stopped by PID at the end.

    Started together; their faust data directory (``{app_id}-data``, in the working directory
    by default) goes to a temporary directory through ``FAUST_DATADIR``, not the repository.
    """
    app_id = f"test-pair-{uuid.uuid4().hex[:8]}"
    workdirs = [tmp_path_factory.mktemp(f"worker{i}") for i in range(2)]
    scenarios = [str(path) for path in scenario_files.values()]
    datadir = tmp_path_factory.mktemp("faust") / "{conf.name}-data"
    with pytest.MonkeyPatch.context() as env, ThreadPoolExecutor(2) as pool:
        env.setenv("FAUST_DATADIR", str(datadir))
        futures = [
            pool.submit(start_worker, kafka_topics, scenarios, workdir, app_id=app_id)
            for workdir in workdirs
        ]
        wait(futures)
    processes: list[Popen[bytes]] = []
    errors: list[BaseException] = []
    for future in futures:
        error = future.exception()
        if error is None:
            processes.append(future.result())
        else:
            errors.append(error)
    try:
        if errors:
            raise errors[0]
        yield Group(
            kafka_topics,
            processes,
            [workdir / f"{app_id}.ready" for workdir in workdirs],
            [workdir / f"{app_id}.log" for workdir in workdirs],
        )
    finally:
        _stop_all(processes)
    assert all(process.poll() is not None for process in processes)


def _settled(group: Group, timeout_s: float = 60.0) -> dict[int, set[int]]:
    """Worker pid -> its input partitions, once the two ready files show a complete split."""
    deadline = time.monotonic() + timeout_s
    seen: list[object] = []
    while time.monotonic() < deadline:
        seen = []
        for path in group.ready_files:
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                seen.append(json.loads(path.read_text()))
        if len(seen) == 2:
            owned: dict[int, set[int]] = {}
            for body in seen:
                assert isinstance(body, dict)
                per_topic = [set(body["assigned"][spec.name]) for spec in INPUT_TOPICS]
                assert all(p == per_topic[0] for p in per_topic), body  # co-partitioned
                owned[int(body["pid"])] = per_topic[0]
            a, b = owned.values() if len(owned) == 2 else (set(), set())
            if a and b and not a & b and a | b == set(range(PARTITIONS)):
                return owned
        time.sleep(0.1)
    raise AssertionError(f"the group did not settle within {timeout_s:g} s: {seen}\n{group.tail()}")


def _probe(group: Group, timeout_s: float = 45.0) -> None:
    """A garbage record per site and input topic, re-sent until each comes back dead-lettered."""
    publisher = KafkaPublisher(group.bootstrap)
    dead = TopicReader(group.bootstrap, DEAD_LETTER)
    missing = {(site_id, spec.name) for site_id in SITES for spec in INPUT_TOPICS}
    deadline = time.monotonic() + timeout_s
    try:
        while missing and time.monotonic() < deadline:
            for site_id, topic in sorted(missing):
                publisher.produce(topic, site_id.encode(), PROBE)
            publisher.flush()
            resend = time.monotonic() + 2.0
            while missing and time.monotonic() < min(resend, deadline):
                for key, value in dead.read_until(lambda r: False, timeout_s=0.2):
                    body = json.loads(value)
                    if base64.b64decode(body["value_base64"]) != PROBE:
                        continue
                    site_id = key.decode()
                    # the worker saw the record on the partition the test expects
                    assert body["partition"] == SITES[site_id], body
                    missing.discard((site_id, body["topic"]))
                dead.records.clear()
    finally:
        dead.close()
    assert not missing, f"probes not consumed within {timeout_s:g} s: {sorted(missing)}"


@dataclass
class SiteDay:
    scenario: Scenario
    demand: DayDemand
    seed: int
    group: int
    reference: DayRun


def _days(scenario_files: dict[str, Path]) -> dict[str, SiteDay]:
    """A different sampled day per site, and its in-process closed loop as the reference."""
    days = {}
    for i, (site_id, path) in enumerate(scenario_files.items()):
        scenario = load_scenario(path)
        assert scenario.site_id == site_id
        groups = default_groups(scenario)
        seed = 40 + i
        demand = sample_day(groups, i % groups.probs.shape[0], scenario, seed=seed)
        engine = build_engine(load_site(scenario, load_guardrails("small")), "proportional")
        reference = run_day(engine, demand, seed=seed, day=replay_day_key(site_id, demand, "two"))
        days[site_id] = SiteDay(scenario, demand, seed, day_type_group(groups, demand), reference)
    return days


def test_two_workers_share_the_sites_each_decided_by_one(
    group: Group, scenario_files: dict[str, Path]
) -> None:
    owned = _settled(group)
    assert set(owned) == {process.pid for process in group.processes}
    owner_of_site = {
        site_id: next(pid for pid, parts in owned.items() if partition in parts)
        for site_id, partition in SITES.items()
    }
    _probe(group)
    days = _days(scenario_files)
    n_total = sum(day.scenario.n_intervals for day in days.values())

    allocations = TopicReader(group.bootstrap, ALLOCATIONS)
    audit = TopicReader(group.bootstrap, DECISIONS_AUDIT)
    with ThreadPoolExecutor(len(days)) as pool:
        futures = {
            site_id: pool.submit(
                replay_day,
                day.demand,
                day.seed,
                group.bootstrap,
                day.group,
                speed=None,
                run_id="two",
            )
            for site_id, day in days.items()
        }
        results: dict[str, ReplayResult] = {}
        for site_id, future in futures.items():
            try:
                results[site_id] = future.result()
            except Exception as error:
                raise AssertionError(f"replay of {site_id}: {error}\n{group.tail()}") from error
    ours = set(SITES)
    for reader in (allocations, audit):
        reader.read_until(lambda r: sum(k.decode() in ours for k, _ in r) >= n_total, 15.0)
    time.sleep(0.5)  # a duplicate would arrive right behind
    allocated = allocations.read_until(lambda r: False, timeout_s=0.5)
    audited = audit.read_until(lambda r: False, timeout_s=0.5)
    allocations.close()
    audit.close()

    decider: dict[str, int] = {}
    for site_id, day in days.items():
        n = day.scenario.n_intervals
        reference = day.reference
        result = results[site_id]
        # (1) the closed loop through two workers is the in-process closed loop, site by site
        assert result.kpis == reference.kpis, site_id
        assert [a.chute_map for a in result.allocations] == [
            d.event.chute_map for d in reference.decisions
        ]

        # (1) exactly one allocation per interval on the topic, equal to run_day's
        key = site_id.encode()
        seen = [decode(value) for k, value in allocated if k == key]
        assert all(isinstance(event, AllocationDecided) for event in seen)
        by_interval = {e.interval_index: e for e in seen if isinstance(e, AllocationDecided)}
        assert len(seen) == len(by_interval) == n, (site_id, [e.event_id for e in seen])
        for decision in reference.decisions:
            event = by_interval[decision.event.interval_index]
            assert event.chute_map == decision.event.chute_map
            assert event.decision_id == decision.event.decision_id

        # (2) one audit record per interval, all from one worker: the partition's owner
        records = [json.loads(value) for k, value in audited if k == key]
        assert sorted(r["interval_index"] for r in records) == list(range(n)), site_id
        workers = {r["worker"] for r in records}
        assert len(workers) == 1, (site_id, workers)
        pid = int(workers.pop().rsplit("/", 1)[1])
        assert pid == owner_of_site[site_id], (site_id, pid, owned)
        decider[site_id] = pid

    # (2) the work is shared: each worker decided at least one site
    by_worker = {pid: sorted(s for s, p in decider.items() if p == pid) for pid in owned}
    assert all(by_worker.values()), by_worker
    assert all(process.poll() is None for process in group.processes), group.tail()


def _owns_all(group: Group, survivor: Popen[bytes], timeout_s: float = 60.0) -> None:
    """Wait until ``survivor``'s ready file shows every input partition (the group rebalanced)."""
    path = group.ready_files[group.processes.index(survivor)]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            body = json.loads(path.read_text())
            parts = [set(body["assigned"][spec.name]) for spec in INPUT_TOPICS]
            if all(p == set(range(PARTITIONS)) for p in parts):
                return
        time.sleep(0.1)
    raise AssertionError(f"no rebalance to {survivor.pid} within {timeout_s:g} s\n{group.tail()}")


def test_a_per_site_canary_is_applied_by_the_sites_owner_also_after_a_rebalance(
    group: Group, scenario_files: dict[str, Path]
) -> None:
    """Runs after the test above (same workers). A canary on one site is served by the worker
    that owns it; that worker leaves mid-day, the other takes the site over with its route from
    the table, and a rollback issued after the rebalance is applied by the new owner at the next
    interval. The other sites' routes are untouched."""
    from contracts.control import CanaryGate, CanaryState, PolicyRef
    from rollout.canary import canary_route, rollback_route
    from stream.routing import publish_routes, read_routes

    def socket_name() -> str:
        import socket

        return socket.gethostname()

    owned = _settled(group)
    site_id = next(iter(SITES))
    owner = next(p for p in group.processes if SITES[site_id] in owned[p.pid])
    survivor = next(p for p in group.processes if p is not owner)
    scenario = load_scenario(scenario_files[site_id])
    groups = default_groups(scenario)
    demand = sample_day(groups, 2, scenario, seed=77)
    incumbent, candidate = PolicyRef(name="proportional"), PolicyRef(name="static")
    # the workers published each site's --policy as revision 1 (worker-default)
    before = read_routes(group.bootstrap)[site_id]
    assert before.action == "worker-default" and before.revision == 1
    state = CanaryState(incumbent=incumbent, gate=CanaryGate(), started_revision=2)
    routed = canary_route(before, site_id, candidate, incumbent, state)
    assert publish_routes(group.bootstrap, [routed], wait_applied=True)[site_id].startswith(
        "applied"
    )
    audit = TopicReader(group.bootstrap, DECISIONS_AUDIT)

    def operate(allocation: AllocationDecided) -> None:
        if allocation.interval_index == 2:  # the owner leaves mid-day
            os.kill(owner.pid, signal.SIGTERM)
            stop_worker(owner, timeout_s=20.0)
            _owns_all(group, survivor)
        if allocation.interval_index == 5:  # rolled back after the rebalance
            current = read_routes(group.bootstrap)[site_id]
            back = rollback_route(current, "test rollback")
            answer = publish_routes(group.bootstrap, [back], wait_applied=True)[site_id]
            assert answer == f"applied by {socket_name()}/{survivor.pid}", answer

    result = replay_day(
        demand, 77, group.bootstrap, day_type_group(groups, demand), on_allocation=operate
    )
    n = scenario.n_intervals
    served = [(a.interval_index, a.policy_name, a.route_revision) for a in result.allocations]
    assert served == [(k, "static", 2) if k <= 5 else (k, "proportional", 3) for k in range(n)], (
        served
    )
    key = site_id.encode()
    records = audit.read_until(
        lambda r: sum(k == key and b'"interval_index"' in v for k, v in r) >= n, 15.0
    )
    audit.close()
    deciders = {}
    for k, value in records:
        body = json.loads(value)
        if k == key and body.get("kind") != "route_received":
            deciders[body["interval_index"]] = int(body["worker"].rsplit("/", 1)[1])
    assert {deciders[k] for k in range(3)} == {owner.pid}
    assert {deciders[k] for k in range(3, n)} == {survivor.pid}
    others = read_routes(group.bootstrap)
    # no other site was routed beyond its worker's default
    assert all(others[s].revision == 1 for s in SITES if s != site_id)
