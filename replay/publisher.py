"""Publishing contract events to Kafka: the replay's (and a WCS adapter's) producer side.

``KafkaPublisher`` is an idempotent confluent-kafka producer (``enable.idempotence``: a retried
send is not duplicated and per-partition order holds through retries); every record is keyed
by site so a site's events stay in order on one partition of each topic. Each event goes to
the topic ``contracts.topics.TOPIC_FOR_EVENT`` routes it to. It connects PLAINTEXT to a
bootstrap string, or with TLS/SASL as a :class:`stream.clients.KafkaClientConfig` says.
``MemoryPublisher`` is the in-memory port for tests.
"""

from __future__ import annotations

from typing import Protocol

from confluent_kafka import KafkaException, Producer

from contracts.codec import encode
from contracts.events import EVENT_TYPES, Envelope
from contracts.topics import TOPIC_FOR_EVENT, message_key
from stream.clients import KafkaClientConfig, as_client

_EVENT_TYPE: dict[type[Envelope], str] = {cls: name for name, cls in EVENT_TYPES.items()}


def event_type_of(event: Envelope) -> str:
    """The ``event_type`` of any contract event (the envelope base class does not declare it).

    A dict lookup by class: reading ``model_fields`` costs ~1 us per call (pydantic goes
    through a deprecation-aware descriptor), and replay asks once per published record.
    """
    name = _EVENT_TYPE.get(type(event))
    if name is None:
        name = str(type(event).model_fields["event_type"].default)
    return name


class Publisher(Protocol):
    """Where replayed events go."""

    def publish(self, event: Envelope) -> None: ...

    def flush(self) -> None: ...


class MemoryPublisher:
    """Keeps ``(topic, key, value)`` in a list."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []

    def publish(self, event: Envelope) -> None:
        topic = TOPIC_FOR_EVENT[event_type_of(event)].name
        self.records.append((topic, message_key(event.site_id), encode(event)))

    def flush(self) -> None:
        pass


class KafkaPublisher:
    """Idempotent producer; :meth:`flush` raises if any record could not be delivered."""

    def __init__(self, bootstrap: str | KafkaClientConfig, *, linger_ms: int = 2) -> None:
        self._producer = Producer(
            as_client(bootstrap).confluent_config(
                {
                    "enable.idempotence": True,
                    # Kafka's default (Java, faust/aiokafka) partitioner instead of librdkafka's
                    # CRC-32: a site's records then share a partition number with the worker's
                    # own output and with any Java WCS producer
                    # (contracts.topics.kafka_partition).
                    "partitioner": "murmur2_random",
                    "linger.ms": linger_ms,
                    "batch.num.messages": 10_000,
                    "queue.buffering.max.messages": 1_000_000,
                    # A delivery report only for a failed record (:meth:`flush` still sees every
                    # failure): a Python callback per successful record cost ~0.4 of 2.3 us a
                    # record of producing (issue 22; ~0.7M records a large day).
                    "delivery.report.only.error": True,
                    "on_delivery": self._delivered,
                }
            )
        )
        self._errors: list[str] = []
        self.sent = 0

    def _delivered(self, error: object, message: object) -> None:
        if error is not None:
            self._errors.append(str(error))

    def publish(self, event: Envelope) -> None:
        self.produce(
            TOPIC_FOR_EVENT[event_type_of(event)].name, message_key(event.site_id), encode(event)
        )

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        """A raw record (tests use it for bytes that are not valid events)."""
        while True:
            try:
                self._producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain
        self.sent += 1
        if self.sent % 10_000 == 0:
            self._producer.poll(0)

    def flush(self, timeout: float = 60.0) -> None:
        left = self._producer.flush(timeout)
        if left:
            raise KafkaException(f"{left} records not delivered within {timeout} s")
        if self._errors:
            errors, self._errors = self._errors, []
            raise KafkaException(f"{len(errors)} records failed: {errors[0]}")
