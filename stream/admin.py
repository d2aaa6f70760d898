"""Create chuteflow's topics explicitly, with the partition counts ``contracts.topics`` declares.

Why not let Kafka or faust create them: faust does not create an agent's source topic, so a
broker with ``auto.create.topics.enable`` makes it with one partition and the worker later
crashes with PartitionsMismatch against its six-partition table
(``docs/design-facts.md#faust-topics``). The local
broker therefore runs with auto-creation off, and every deployment runs this once before
the workers (``chuteflow kafka topics``).

Idempotent: an existing topic with the declared partition count is fine. An existing topic
with a different count is an error, never "fixed": adding partitions moves sites to other
partitions (key hashing), which breaks per-site ordering and the tables keyed on them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

# NewTopic is defined in the C extension; confluent_kafka.admin re-exports it, but in a way
# mypy --strict does not accept as an explicit export, so take it from where it lives.
from confluent_kafka.cimpl import NewTopic

from contracts.topics import ALL_TOPICS, TopicSpec
from floor.errors import ChuteflowError
from stream.clients import KafkaClientConfig, as_client, connect_admin


class TopicMismatchError(ChuteflowError):
    """A topic exists with another partition count than its :class:`TopicSpec` declares."""


class TopicAdminError(ChuteflowError):
    """The broker refused to create a topic, or the topics did not become ready in time."""


def _partition_counts(
    admin: AdminClient, timeout: float, metadata: Any = None
) -> dict[str, tuple[int, bool]]:
    """Topic name -> (partition count, every partition has a leader and no error)."""
    if metadata is None:
        metadata = admin.list_topics(timeout=timeout)
    counts: dict[str, tuple[int, bool]] = {}
    for name, topic in metadata.topics.items():
        if topic.error is not None:
            continue
        partitions = topic.partitions.values()
        ready = all(p.error is None and p.leader >= 0 for p in partitions)
        counts[str(name)] = (len(topic.partitions), ready)
    return counts


def _mismatches(specs: Iterable[TopicSpec], counts: dict[str, tuple[int, bool]]) -> list[str]:
    return [
        f"{spec.name} has {counts[spec.name][0]} partitions, contracts declare {spec.partitions}"
        for spec in specs
        if spec.name in counts and counts[spec.name][0] != spec.partitions
    ]


def ensure_topics(
    bootstrap: str | KafkaClientConfig,
    specs: Iterable[TopicSpec] = ALL_TOPICS,
    replication: int = 1,
    *,
    timeout: float = 30.0,
) -> dict[str, str]:
    """Create every topic in ``specs`` that is missing; return name -> ``created``/``exists``.

    ``bootstrap`` is a PLAINTEXT address or a :class:`~stream.clients.KafkaClientConfig`
    (TLS, SASL). Returns only once every topic is visible in the broker's metadata with a
    leader for each partition, so a producer or consumer started right after finds them.
    Raises :class:`TopicMismatchError` when an existing topic has another partition count (all
    mismatches in one message), :class:`~stream.clients.KafkaAuthError` within seconds when
    the broker refuses the credentials or TLS fails (the worker's check at start,
    ``docs/design-facts.md#kafka-auth``), :class:`~stream.clients.KafkaUnreachableError`
    when no broker answers within ``timeout`` and :class:`TopicAdminError` for any other
    failure.
    """
    specs = tuple(specs)
    client = as_client(bootstrap)
    bootstrap = client.bootstrap
    admin, metadata = connect_admin(client, timeout)
    counts = _partition_counts(admin, timeout, metadata)
    wrong = _mismatches(specs, counts)
    if wrong:
        raise TopicMismatchError("; ".join(wrong))

    outcome = {spec.name: "exists" for spec in specs if spec.name in counts}
    missing = [spec for spec in specs if spec.name not in counts]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(s.name, num_partitions=s.partitions, replication_factor=replication)
                for s in missing
            ],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for spec in missing:
            try:
                futures[spec.name].result()
                outcome[spec.name] = "created"
            except KafkaException as error:
                kafka_error = error.args[0]
                if kafka_error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TopicAdminError(f"creating {spec.name}: {kafka_error.str()}") from None
                # Someone else (another worker, a compose service) created it meanwhile; the
                # partition count is checked below like any existing topic's.
                outcome[spec.name] = "exists"

    deadline = time.monotonic() + timeout
    while True:
        counts = _partition_counts(admin, timeout)
        wrong = _mismatches(specs, counts)
        if wrong:
            raise TopicMismatchError("; ".join(wrong))
        pending = [s.name for s in specs if s.name not in counts or not counts[s.name][1]]
        if not pending:
            return {spec.name: outcome[spec.name] for spec in specs}
        if time.monotonic() > deadline:
            raise TopicAdminError(
                f"topics not ready on {bootstrap} after {timeout:.0f} s: {', '.join(pending)}"
            )
        time.sleep(0.1)
