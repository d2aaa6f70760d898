"""Read topics from a point to their current end: what the tools that answer questions about
the past (``policy history``, ``shadow report``, the canary gate, route bootstrap) need.

One reader for all of them: the end is the high watermark when the read starts, so a read
always finishes on a topic that is still being written, and records come back in offset order
per partition. Not for the worker's hot path (that is faust's consumer).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from contracts.topics import PARTITIONS, kafka_partition, message_key
from floor.errors import ChuteflowError
from stream.clients import KafkaClientConfig, as_client


class TopicReadError(ChuteflowError):
    """A topic could not be read to its end in time; one line."""


def missing_topic(topic: str, bootstrap: str) -> str:
    """The one line for a topic the broker does not have: chuteflow never creates its topics
    on the fly (``stream/admin.py``), so it says which command does."""
    return (
        f"topic {topic} does not exist at {bootstrap} (create the topics: chuteflow kafka topics)"
    )


@dataclass(frozen=True)
class Record:
    """One Kafka record as read."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


def site_partition(site_id: str, partitions: int = PARTITIONS) -> int:
    """The partition of a site's records on every site-keyed topic."""
    return kafka_partition(message_key(site_id), partitions)


def read_to_end(
    bootstrap: str | KafkaClientConfig,
    topics: Iterable[str],
    *,
    partitions: Sequence[int] | None = None,
    since_ms: int | None = None,
    timeout_s: float = 30.0,
) -> list[Record]:
    """Records of ``topics`` (of ``partitions``, default all) from the beginning, or from the
    first record at or after ``since_ms`` (Kafka timestamp), to the end each partition had when
    the read started.

    Raises:
        TopicReadError: a topic is missing or the end was not reached within ``timeout_s``.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    client = as_client(bootstrap)
    consumer = Consumer(
        client.confluent_config(
            {
                "group.id": f"chuteflow-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "log_level": 0,
            }
        )
    )
    deadline = time.monotonic() + timeout_s
    out: list[Record] = []
    try:
        wanted: list[tuple[str, int]] = []
        metadata = consumer.list_topics(timeout=min(10.0, timeout_s))
        for topic in topics:
            meta = metadata.topics.get(topic)
            if meta is None or meta.error is not None:
                raise TopicReadError(missing_topic(topic, client.bootstrap))
            numbers = sorted(meta.partitions) if partitions is None else list(partitions)
            wanted += [(topic, p) for p in numbers]
        ends: dict[tuple[str, int], int] = {}
        starts: list[TopicPartition] = []
        for topic, number in wanted:
            while True:
                try:
                    low, high = consumer.get_watermark_offsets(
                        TopicPartition(topic, number), timeout=5.0
                    )
                    break
                except KafkaException as failure:
                    if time.monotonic() > deadline:
                        raise TopicReadError(f"reading {topic}: {failure.args[0].str()}") from None
                    time.sleep(0.2)
            if high > low:
                ends[(topic, number)] = high
                starts.append(TopicPartition(topic, number, OFFSET_BEGINNING))
        if since_ms is not None and starts:
            query = [TopicPartition(tp.topic, tp.partition, since_ms) for tp in starts]
            found = consumer.offsets_for_times(query, timeout=10.0)
            starts = []
            for tp in found:
                if tp.offset < 0:  # nothing at or after since_ms
                    ends.pop((tp.topic, tp.partition), None)
                else:
                    starts.append(tp)
        if not starts:
            return out
        consumer.assign(starts)
        pending = {
            k: v for k, v in ends.items() if any((s.topic, s.partition) == k for s in starts)
        }
        while pending:
            if time.monotonic() > deadline:
                raise TopicReadError(
                    f"reading {', '.join(sorted({t for t, _ in pending}))}: not at the end "
                    f"after {timeout_s:g} s"
                )
            for message in consumer.consume(10_000, 0.5):
                if message.error() is not None:
                    continue
                where = (str(message.topic()), int(message.partition() or 0))
                end = pending.get(where)
                offset = int(message.offset() or 0)
                if end is None or offset >= end:
                    continue
                out.append(
                    Record(
                        topic=where[0],
                        partition=where[1],
                        offset=offset,
                        key=message.key(),
                        value=message.value(),
                        timestamp_ms=message.timestamp()[1],
                    )
                )
                if offset >= end - 1:
                    pending.pop(where)
    finally:
        consumer.close()
    return out


__all__ = ["Record", "TopicReadError", "missing_topic", "read_to_end", "site_partition"]
