"""Partition safety: a record on another partition than its site's key hashes to (murmur2,
Java's default partitioner) is dead-lettered as ``wrong_partition`` and counted, never applied.

In memory for the rule, and through a real broker and worker for a day produced with
librdkafka's default partitioner (``consistent_random``, CRC32), which puts ``site-small``
on partition 4 instead of 1.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
import zlib
from pathlib import Path

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from contracts.codec import decode
from contracts.events import AllocationDecided, DayStarted, Envelope, IntervalClosed
from contracts.topics import DEAD_LETTER, INTERVALS, PARTITIONS, kafka_partition, message_key
from floor.daytypes import default_groups
from floor.scenario import load_scenario
from localkafka.launcher import free_port
from replay.loop import day_type_group, owner_of
from replay.publisher import MemoryPublisher
from replay.workers import start_worker, stop_worker
from stream.deadletter import original_value
from stream.processor import StreamProcessor
from stream.worker import make_site
from tests.stream.readers import TopicReader
from twin.groups import sample_day
from twin.sim import SortationTwin

SCENARIO = load_scenario("small")
SITE = SCENARIO.site_id
RIGHT = kafka_partition(message_key(SITE), PARTITIONS)
WRONG = zlib.crc32(message_key(SITE)) % PARTITIONS  # librdkafka's consistent_random


def _day_records(seed: int, run: str) -> list[tuple[str, bytes, bytes]]:
    """``day_started``, interval 0's floor records and its close, as a producer sends them."""
    groups = default_groups(SCENARIO)
    demand = sample_day(groups, 1, SCENARIO, seed=seed)
    processor = StreamProcessor({SITE: make_site(SCENARIO, "proportional", None)})
    publisher = MemoryPublisher()
    counts: dict[str, int] = {}

    def emit(event: Envelope) -> None:
        if isinstance(event, IntervalClosed):
            event = event.model_copy(update={"events_in_interval": dict(counts)})
        publisher.publish(event)
        counts[publisher.records[-1][0]] = counts.get(publisher.records[-1][0], 0) + 1

    start = DayStarted(
        event_id=f"partitions-{run}",
        event_time=demand.day_start,
        site_id=SITE,
        day_start=demand.day_start,
        day_type_group=day_type_group(groups, demand),
    )
    publisher.publish(start)
    first = processor.handle(*publisher.records[0])
    allocation = next(r for r in first if r.topic == "chuteflow.allocations.v1")
    event = decode(allocation.value)
    assert isinstance(event, AllocationDecided)
    twin = SortationTwin(SCENARIO, demand, seed=seed, emit=emit)
    twin.run_interval(owner_of(SCENARIO, event))
    return list(publisher.records)


def test_the_two_partitioners_disagree_for_the_small_site() -> None:
    assert (RIGHT, WRONG) == (1, 4)  # the finding; the tests below rely on it


def test_a_misplaced_record_is_dead_lettered_and_never_applied() -> None:
    records = _day_records(3, "memory")
    processor = StreamProcessor(
        {SITE: make_site(SCENARIO, "proportional", None)}, partitions=PARTITIONS
    )
    out = processor.handle_many(
        [(topic, key, value, WRONG, offset) for offset, (topic, key, value) in enumerate(records)]
    )
    assert {r.topic for r in out} == {DEAD_LETTER.name}
    reasons = [original_value(r.value)[0] for r in out]
    assert len(reasons) == len(records)
    assert all(r.startswith(f"wrong_partition: site '{SITE}'") for r in reasons)
    assert f"hashes to partition {RIGHT}" in reasons[0] and "murmur2_random" in reasons[0]
    assert processor.dead_letters == {(SITE, "wrong_partition"): len(records)}
    site = processor.sites[SITE]
    assert not site.day_open and site.partition is None and site.offsets == {}

    # A key-less record is placed by the site its event names.
    topic, _, value = records[0]
    out = processor.handle(topic, None, value, WRONG, 0)
    assert original_value(out[0].value)[0].startswith("wrong_partition:")
    # The same records on the right partition are applied: the day opens and is decided.
    out = processor.handle_many(
        [(topic, key, value, RIGHT, offset) for offset, (topic, key, value) in enumerate(records)]
    )
    assert [r for r in out if r.topic == DEAD_LETTER.name] == []
    assert processor.allocations[SITE] == 2 and site.day_open


def _metric(port: int, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and set(labels.items()) <= set(s.labels.items())
    )


@pytest.mark.kafka
def test_a_day_produced_with_librdkafkas_default_partitioner_is_dead_lettered_and_counted(
    kafka_topics: str, tmp_path: Path
) -> None:
    port = free_port()
    app_id = f"partitions-{uuid.uuid4().hex[:8]}"
    worker = start_worker(
        kafka_topics, ["small"], tmp_path, app_id=app_id, extra=["--metrics-port", str(port)]
    )
    letters = TopicReader(kafka_topics, DEAD_LETTER)
    try:
        records = _day_records(5, app_id)
        producer = Producer({"bootstrap.servers": kafka_topics})  # librdkafka's default
        landed: list[int] = []
        for topic, key, value in records:
            producer.produce(
                topic, value, key=key, on_delivery=lambda e, m: landed.append(m.partition())
            )
        assert producer.flush(30) == 0
        misplaced = sum(p != RIGHT for p in landed)
        assert misplaced == len(records) == len(landed)  # CRC32 put every one on partition 4

        sent = {value for _, _, value in records}
        mine = lambda rs: [  # noqa: E731
            json.loads(v) for _, v in rs if original_value(v)[1] in sent
        ]
        found = letters.read_until(lambda rs: len(mine(rs)) >= misplaced, timeout_s=60)
        bodies = mine(found)
        assert len(bodies) == misplaced
        assert {b["kind"] for b in bodies} == {"wrong_partition"}
        assert {b["partition"] for b in bodies} == {WRONG}
        counted = _metric(port, "chuteflow_dead_letters_total", site=SITE, reason="wrong_partition")
        assert counted == misplaced
        # nothing of it reached the site's state: no day, no decision
        assert _metric(port, "chuteflow_allocations_total", site=SITE) == 0
        assert _metric(port, "chuteflow_day_open", site=SITE) == 0

        # The day's opening on the partition the contract puts it: decided as usual.
        fixed = Producer({"bootstrap.servers": kafka_topics, "partitioner": "murmur2_random"})
        assert records[0][0] == INTERVALS.name  # day_started
        fixed.produce(INTERVALS.name, records[0][2], key=message_key(SITE))
        assert fixed.flush(30) == 0
        deadline = time.monotonic() + 30
        while _metric(port, "chuteflow_allocations_total", site=SITE) < 1:
            assert time.monotonic() < deadline, "the correctly placed day_started was not decided"
            time.sleep(0.3)
        assert worker.poll() is None
    finally:
        letters.close()
        stop_worker(worker)
