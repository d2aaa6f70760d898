"""A WCS team integrates from the AsyncAPI document alone.

The consuming side (:class:`WcsContract`, :class:`AllocationConsumer`) reads topic names, the
key, the partitioning rule and the message schemas from ``docs/asyncapi.yaml`` and uses only
PyYAML, jsonschema and plain confluent-kafka: no chuteflow module. The harness around it (a
broker, a ``chuteflow worker`` process, a replayed small-site day as the floor) uses the
project's tools, as a WCS team's test bench would run the vendor's.

It checks what the document promises: every allocation validates against the document's
schema, is keyed by its site_id and sits on the partition the document's murmur2 rule gives,
and after dropping repeats by decision_id there is exactly one per interval of the day.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

pytestmark = pytest.mark.kafka

DOCUMENT = Path(__file__).resolve().parent.parent.parent / "docs" / "asyncapi.yaml"


# --- the WCS side: the document, yaml, jsonschema and confluent-kafka only -----------------


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The document's rule, written from it: (murmur2(key) & 0x7fffffff) % partitions, with
    Kafka's murmur2 (seed 0x9747b28c)."""
    m, h = 0x5BD1E995, (0x9747B28C ^ len(key)) & 0xFFFFFFFF
    whole = len(key) & ~3
    for i in range(0, whole, 4):
        k = (int.from_bytes(key[i : i + 4], "little") * m) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = key[whole:]
    if len(rest) == 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if rest:
        h = ((h ^ rest[0]) * m) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * m) & 0xFFFFFFFF
    return ((h ^ (h >> 15)) & 0x7FFFFFFF) % partitions


class WcsContract:
    """What the integration needs, read from the AsyncAPI document."""

    def __init__(self, path: Path) -> None:
        self.document: dict[str, Any] = yaml.safe_load(path.read_text())
        assert self.document["asyncapi"].startswith("3.")
        self.registry: Registry[Any] = Registry().with_resource(
            "urn:asyncapi", Resource.from_contents(self.document, default_specification=DRAFT7)
        )

    def channel(self, channel_id: str) -> dict[str, Any]:
        channel: dict[str, Any] = self.document["channels"][channel_id]
        return channel

    def received_by_wcs(self, channel_id: str) -> list[str]:
        """Names of the messages the application sends on ``channel_id`` (what the WCS reads)."""
        names = []
        for operation in self.document["operations"].values():
            if operation["action"] == "send" and operation["channel"]["$ref"].endswith(
                f"/{channel_id}"
            ):
                names += [ref["$ref"].rsplit("/", 1)[-1] for ref in operation["messages"]]
        return names

    def validator(self, message: str) -> Draft7Validator:
        ref = {"$ref": f"urn:asyncapi#/components/messages/{message}/payload"}
        return Draft7Validator(ref, registry=self.registry)


class AllocationConsumer:
    """Reads a channel from its end on, every partition, as a WCS subscriber would."""

    def __init__(self, bootstrap: str, contract: WcsContract, channel_id: str) -> None:
        channel = contract.channel(channel_id)
        self.topic = channel["address"]
        self.partitions = channel["bindings"]["kafka"]["partitions"]
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"wcs-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
            }
        )
        start = []
        for p in range(self.partitions):
            _, high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)
            start.append(TopicPartition(self.topic, p, high))
        self.consumer.assign(start)
        self.records: list[tuple[int, bytes, dict[str, Any]]] = []

    def poll_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            message = self.consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            partition = message.partition()
            assert partition is not None
            self.records.append(
                (partition, message.key() or b"", json.loads(message.value() or b"{}"))
            )

    def close(self) -> None:
        self.consumer.close()


# --- the harness: broker, worker and floor from the project's tools ---------------------


@pytest.fixture(scope="module")
def worker(kafka_topics: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from replay.workers import start_worker, stop_worker

    process = start_worker(
        kafka_topics,
        ["small"],
        tmp_path_factory.mktemp("wcs-worker"),
        app_id=f"wcs-{uuid.uuid4().hex[:8]}",
    )
    try:
        yield kafka_topics
    finally:
        stop_worker(process)


def _replay_small_day(bootstrap: str) -> tuple[str, int]:
    """The floor: a small-site day replayed through Kafka; (site id, intervals of the day)."""
    from floor.daytypes import default_groups
    from floor.scenario import load_scenario
    from replay.loop import day_type_group, replay_day
    from twin.groups import sample_day

    scenario = load_scenario("small")
    groups = default_groups(scenario)
    demand = sample_day(groups, 2, scenario, seed=21)
    result = replay_day(demand, 21, bootstrap, day_type_group(groups, demand), run_id="wcs")
    assert len(result.allocations) == scenario.n_intervals
    return scenario.site_id, scenario.n_intervals


def test_a_wcs_team_consumes_a_replayed_day_from_the_asyncapi_document(worker: str) -> None:
    started = time.monotonic()
    contract = WcsContract(DOCUMENT)
    channel = contract.channel("allocations.v1")
    rule = channel["x-chuteflow-partitioning"]
    assert rule["key"] == "site_id" and rule["partitioner"] == "murmur2"
    assert contract.received_by_wcs("allocations.v1") == ["allocation_decided"]
    validate = contract.validator("allocation_decided")
    consumer = AllocationConsumer(worker, contract, "allocations.v1")
    try:
        site_id, intervals = _replay_small_day(worker)
        consumer.poll_for(3.0)  # what arrived, and any repeat right behind it
    finally:
        consumer.close()

    ours = [r for r in consumer.records if r[2].get("site_id") == site_id]
    assert ours, f"no allocation for {site_id} on {consumer.topic}"
    first_by_id: dict[str, dict[str, Any]] = {}
    for partition, key, payload in ours:
        errors = sorted(e.message for e in validate.iter_errors(payload))
        assert not errors, f"{payload.get('decision_id')}: {errors}"
        assert key == payload[rule["key"]].encode(rule["keyEncoding"])
        assert partition == murmur2_partition(key, consumer.partitions)
        assert partition == rule["examplePartitions"][site_id]
        first_by_id.setdefault(payload["decision_id"], payload)  # repeats are dropped by id
    day_keys = {decision_id.split("/")[1] for decision_id in first_by_id}
    assert len(day_keys) == 1, day_keys
    per_interval = sorted(p["interval_index"] for p in first_by_id.values())
    assert per_interval == list(range(intervals)), "not one allocation per interval"
    print(
        f"WCS test: {len(ours)} allocations ({len(first_by_id)} distinct) on "
        f"{consumer.topic} partition {ours[0][0]}, all valid, "
        f"{time.monotonic() - started:.1f} s"
    )
