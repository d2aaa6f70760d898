"""An independent Kafka reader for the integration tests: what a WCS subscriber would see."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from contracts.topics import TopicSpec
from stream.clients import KafkaClientConfig, as_client

Records = list[tuple[bytes, bytes]]


class TopicReader:
    """Every record of ``spec`` from the current end on (assigned, no consumer-group offsets).

    Records accumulate in ``records`` across calls; ``read_until`` returns them all.
    """

    def __init__(self, bootstrap: str | KafkaClientConfig, spec: TopicSpec) -> None:
        self.consumer = Consumer(
            as_client(bootstrap).confluent_config(
                {"group.id": f"t-{uuid.uuid4().hex}", "enable.auto.commit": False}
            )
        )
        assignment = []
        for p in range(spec.partitions):
            _, high = self.consumer.get_watermark_offsets(TopicPartition(spec.name, p), timeout=10)
            assignment.append(TopicPartition(spec.name, p, high))
        self.consumer.assign(assignment)
        self.records: Records = []

    def read_until(self, done: Callable[[Records], bool], timeout_s: float = 30.0) -> Records:
        """Everything read so far, once ``done`` holds or the time is up."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not done(self.records):
            message = self.consumer.poll(0.2)
            if message is not None and message.error() is None:
                self.records.append((message.key() or b"", message.value() or b""))
        return self.records

    def close(self) -> None:
        self.consumer.close()
