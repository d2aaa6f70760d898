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

Topic configs a :class:`TopicSpec` declares (the policy store's ``cleanup.policy=compact``) are
set when the topic is created, and an existing topic with another value is an error too: a
policy store that deletes by retention would lose registered policies after a week.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

# NewTopic is defined in the C extension, ConfigResource and ResourceType in private modules;
# confluent_kafka.admin re-exports them, but in a way mypy --strict does not accept as an
# explicit export, so take them from where they live.
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._resource import ResourceType
from confluent_kafka.cimpl import NewTopic

from contracts.topics import ALL_TOPICS, TopicSpec
from floor.errors import ChuteflowError
from stream.clients import KafkaClientConfig, as_client, connect_admin
from stream.topic_reader import missing_topic


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


_NOT_AUTHORIZED = (
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
)


def _config_mismatches(admin: AdminClient, specs: Iterable[TopicSpec], timeout: float) -> list[str]:
    """Declared configs an existing topic does not have (one describe request, only for
    topics that declare configs)."""
    with_configs = [spec for spec in specs if spec.configs]
    if not with_configs:
        return []
    futures = admin.describe_configs(
        [ConfigResource(ResourceType.TOPIC, spec.name) for spec in with_configs],
        request_timeout=timeout,
    )
    wrong = []
    by_name = {str(resource.name): future for resource, future in futures.items()}
    for spec in with_configs:
        try:
            entries = by_name[spec.name].result()
        except KafkaException as error:
            kafka_error = error.args[0]
            if kafka_error.code() in _NOT_AUTHORIZED:
                continue  # a client without DescribeConfigs cannot check; it need not
            raise TopicAdminError(
                f"reading the configs of {spec.name}: {kafka_error.str()}"
            ) from None
        for key, value in spec.configs:
            entry = entries.get(key)
            actual = None if entry is None else entry.value
            if actual != value:
                wrong.append(f"{spec.name} has {key}={actual}, contracts declare {value}")
    return wrong


def require_topics(
    bootstrap: str | KafkaClientConfig, names: Iterable[str], *, timeout: float = 10.0
) -> None:
    """Raise :class:`TopicAdminError` (one line, saying which command creates them) unless the
    broker has every topic in ``names``: a long command that writes to them at its end (``site
    onboard --register``) checks this before it starts, not after half an hour."""
    client = as_client(bootstrap)
    admin, metadata = connect_admin(client, timeout)
    counts = _partition_counts(admin, timeout, metadata)
    for name in names:
        if name not in counts:
            raise TopicAdminError(missing_topic(name, client.bootstrap))


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
    Raises :class:`TopicMismatchError` when an existing topic has another partition count or
    lacks a config its spec declares (all mismatches in one message),
    :class:`~stream.clients.KafkaAuthError` within seconds when the broker refuses the
    credentials or TLS fails (the worker's check at start, ``docs/design-facts.md#kafka-auth``),
    :class:`~stream.clients.KafkaUnreachableError` when no broker answers within ``timeout``
    and :class:`TopicAdminError` for any other failure.
    """
    specs = tuple(specs)
    client = as_client(bootstrap)
    bootstrap = client.bootstrap
    admin, metadata = connect_admin(client, timeout)
    counts = _partition_counts(admin, timeout, metadata)
    wrong = _mismatches(specs, counts)
    if wrong:
        raise TopicMismatchError("; ".join(wrong))

    wrong = _config_mismatches(admin, [s for s in specs if s.name in counts], timeout)
    if wrong:
        raise TopicMismatchError("; ".join(wrong))

    outcome = {spec.name: "exists" for spec in specs if spec.name in counts}
    missing = [spec for spec in specs if spec.name not in counts]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    s.name,
                    num_partitions=s.partitions,
                    replication_factor=replication,
                    config=dict(s.configs + s.tuning),
                )
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
