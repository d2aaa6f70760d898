"""Through the real broker: replay == in-process run_day, and bad records are dead-lettered.

One worker process (``chuteflow worker``, fresh consumer group, latest offsets) is
shared by the module and killed by PID at the end. Allocations and dead letters are read by
independent confluent-kafka consumers assigned at the end offsets taken before publishing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from contracts.codec import decode, encode
from contracts.events import AllocationDecided, DayStarted, IntervalClosed, PackageInducted
from contracts.topics import ALLOCATIONS, DEAD_LETTER, INDUCTIONS
from decision.build import build_engine
from floor.daytypes import default_groups
from floor.guardrails import load_guardrails
from floor.scenario import load_scenario
from floor.site import load_site
from replay.loop import day_type_group, replay_day, replay_day_key
from replay.publisher import KafkaPublisher
from replay.workers import start_worker, stop_worker
from stream.deadletter import original_value
from tests.stream.readers import TopicReader
from twin.closed_loop import run_day
from twin.groups import sample_day

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def worker(kafka_topics: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app_id = f"test-worker-{uuid.uuid4().hex[:8]}"
    process = start_worker(
        kafka_topics, ["small"], tmp_path_factory.mktemp("worker"), app_id=app_id
    )
    try:
        yield kafka_topics
    finally:
        stop_worker(process)
    assert process.poll() is not None


def test_replay_through_kafka_equals_run_day(worker: str) -> None:
    scenario = load_scenario("small")
    groups = default_groups(scenario)
    demand = sample_day(groups, 4, scenario, seed=11)
    engine = build_engine(load_site(scenario, load_guardrails("small")), "proportional")
    reference = run_day(
        engine, demand, seed=11, day=replay_day_key(scenario.site_id, demand, "equivalence")
    )

    independent = TopicReader(worker, ALLOCATIONS)
    result = replay_day(demand, 11, worker, day_type_group(groups, demand), run_id="equivalence")
    records = independent.read_until(lambda r: len(r) >= scenario.n_intervals, timeout_s=10)
    time.sleep(0.5)  # a duplicate would arrive right behind
    records = independent.read_until(lambda r: False, timeout_s=0.5)
    independent.close()

    assert result.kpis == reference.kpis
    assert [a.chute_map for a in result.allocations] == [
        d.event.chute_map for d in reference.decisions
    ]
    seen = [decode(value) for key, value in records if key == scenario.site_id.encode()]
    assert all(isinstance(event, AllocationDecided) for event in seen)
    by_interval = {e.interval_index: e for e in seen if isinstance(e, AllocationDecided)}
    assert len(seen) == len(by_interval) == scenario.n_intervals  # exactly one per interval
    for decision in reference.decisions:
        ours = by_interval[decision.event.interval_index]
        assert ours.chute_map == decision.event.chute_map
        assert ours.decision_id == decision.event.decision_id
    # What a WCS can check on its own: known chutes and destinations, within the guardrails.
    guardrails = load_guardrails("small")
    for event in by_interval.values():
        assert set(event.chute_map) <= set(scenario.chute_ids)
        assert set(event.chute_map.values()) <= set(scenario.destinations)
        assert sum(event.chutes_per_destination.values()) <= guardrails.total_eject_chutes
        assert max(event.chutes_per_destination.values()) <= guardrails.max_chutes_per_destination
        assert event.guardrail_version == guardrails.version
        assert event.solver_status in ("optimal", "feasible")


def test_bad_records_are_dead_lettered_and_the_worker_goes_on(worker: str) -> None:
    scenario = load_scenario("small")
    site = scenario.site_id
    key = site.encode()
    day_start = scenario.day_start + timedelta(days=30)
    publisher = KafkaPublisher(worker)
    dead = TopicReader(worker, DEAD_LETTER)
    allocations = TopicReader(worker, ALLOCATIONS)

    garbage = b"\xff not json"
    wrong_type = encode(
        IntervalClosed(
            event_id="x1",
            event_time=day_start,
            site_id=site,
            interval_index=0,
            interval_start=day_start,
            interval_end=day_start + timedelta(minutes=30),
        )
    )
    unknown_site = encode(
        PackageInducted(
            event_id="x2",
            event_time=day_start,
            site_id="site-nowhere",
            package_id="p0",
            destination="D01",
            station=0,
            attempt=1,
        )
    )
    publisher.produce(INDUCTIONS.name, key, garbage)
    publisher.produce(INDUCTIONS.name, key, wrong_type)
    publisher.produce(INDUCTIONS.name, b"site-nowhere", unknown_site)
    publisher.publish(
        DayStarted(
            event_id="d30",
            event_time=day_start,
            site_id=site,
            day_start=day_start,
            day_type_group=0,
        )
    )
    publisher.flush()
    first = allocations.read_until(lambda r: any(k == key for k, _ in r))
    assert any(decode(v).event_type == "allocation_decided" for k, v in first if k == key)

    unknown_destination = encode(
        PackageInducted(
            event_id="x3",
            event_time=day_start + timedelta(seconds=5),
            site_id=site,
            package_id="p1",
            destination="D99",
            station=0,
            attempt=1,
        )
    )
    publisher.produce(INDUCTIONS.name, key, unknown_destination)
    publisher.publish(
        IntervalClosed(
            event_id="c0",
            event_time=day_start + timedelta(minutes=30),
            site_id=site,
            interval_index=0,
            interval_start=day_start,
            interval_end=day_start + timedelta(minutes=30),
            events_in_interval={},
        )
    )
    publisher.flush()
    second = allocations.read_until(
        lambda r: any(k == key and decode(v).interval_index == 1 for k, v in r)  # type: ignore[union-attr]
    )
    assert any(k == key and decode(v).interval_index == 1 for k, v in second)  # type: ignore[union-attr]

    letters = dead.read_until(lambda r: len(r) >= 4)
    dead.close()
    allocations.close()
    reasons = {original: reason for reason, original in (original_value(v) for _, v in letters)}
    assert len(letters) == 4
    assert "invalid event" in reasons[garbage]
    assert "not allowed on chuteflow.inductions.v1" in reasons[wrong_type]
    assert reasons[unknown_site].startswith("unknown_site: 'site-nowhere'")
    assert "unknown destination 'D99'" in reasons[unknown_destination]
    assert all(json.loads(v)["topic"] == INDUCTIONS.name for _, v in letters)


def test_the_same_day_replayed_twice_is_two_days_with_distinct_ids(worker: str) -> None:
    """A repeated day is a new day (its own ``day_started`` id), not a redelivery: both runs
    complete, decide the same allocations, and share no decision id (a WCS dropping repeated
    ids drops none of the second run's)."""
    scenario = load_scenario("small")
    groups = default_groups(scenario)
    demand = sample_day(groups, 2, scenario, seed=5)
    group = day_type_group(groups, demand)
    first = replay_day(demand, 5, worker, group, allocation_timeout_s=30)
    second = replay_day(demand, 5, worker, group, allocation_timeout_s=30)
    assert len(first.allocations) == len(second.allocations) == scenario.n_intervals
    assert first.day != second.day
    assert first.kpis == second.kpis
    assert [a.chute_map for a in first.allocations] == [a.chute_map for a in second.allocations]
    ids = [a.decision_id for a in first.allocations + second.allocations]
    assert len(set(ids)) == 2 * scenario.n_intervals
