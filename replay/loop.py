"""The closed loop through Kafka: the twin plays the floor, the worker decides.

Per interval k: wait for the worker's allocation k on the allocations topic (read by our own
consumer, duplicates dropped by ``decision_id``), run interval k on the twin under it, and
publish the twin's package-level events (inductions, sortation, chute state) with their own
event times, then ``interval_closed`` (k) carrying ``events_in_interval``: how many records
of each floor topic this site published since the previous close. The worker closes k only
once it has consumed that many (Kafka orders only within a partition of one topic, so the
close may overtake the last sortation records; see ``stream.processor``). The day opens with
``day_started``, which carries the day-type group and triggers the first allocation.

Interval k+1 cannot start before allocation k+1 has arrived: the floor needs a chute map.
At ``speed=None`` (``--speed max``) nothing else waits, so the run is deterministic and gives
exactly ``twin.closed_loop.run_day``'s KPIs and allocations. With a speed factor, events are
additionally paced to ``event_time / speed`` of wall time since the start.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt
from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, TopicPartition

from contracts.codec import DecodeError, decode, encode
from contracts.events import AllocationDecided, DayStarted, Envelope, day_key
from contracts.topics import ALLOCATIONS, TOPIC_FOR_EVENT, message_key
from decision.state import IDLE
from floor.daytypes import DayTypeGroups
from floor.errors import ChuteflowError
from floor.forecast import forecast_group
from floor.scenario import Scenario
from replay.publisher import KafkaPublisher, event_type_of
from stream.clients import KafkaClientConfig, as_client
from twin.day import DayDemand
from twin.kpis import DayKPIs
from twin.sim import SortationTwin

IntArray = npt.NDArray[np.int64]


class ReplayError(ChuteflowError):
    """The loop could not complete: no allocation in time, or a delivery failed."""


def day_type_group(groups: DayTypeGroups, demand: DayDemand) -> int:
    """The day type a ``day_started`` declares: the calendar forecast's most likely group,
    what a planner knows before the day (never the day's true group; the worker plans from
    the calendar forecast itself and does not trust the declaration)."""
    return forecast_group(groups, demand.day_start.date())


def day_started_id(site_id: str, demand: DayDemand, run_id: str) -> str:
    """The ``event_id`` of a replay run's ``day_started``: site, day and run."""
    return f"{site_id}-day-{demand.day_start.isoformat()}-{run_id}"


def replay_day_key(site_id: str, demand: DayDemand, run_id: str) -> str:
    """The day key (decision ids) a replay with ``run_id`` gets; for in-process references."""
    return day_key(demand.day_start, day_started_id(site_id, demand, run_id))


def owner_of(scenario: Scenario, allocation: AllocationDecided) -> IntArray:
    """The twin's ``[C]`` owner array for an allocation event."""
    chute = {c: i for i, c in enumerate(scenario.chute_ids)}
    owner = np.full(scenario.eject_chutes, IDLE, dtype=np.int64)
    for chute_id, destination in allocation.chute_map.items():
        owner[chute[chute_id]] = scenario.destination_index[destination]
    return owner


def allocation_consumer(bootstrap: str | KafkaClientConfig) -> Consumer:
    """A consumer of the allocations topic assigned (no consumer group offsets) at its
    current end: made *before* a day is published, it misses none of the run's allocations
    and reads none of an earlier run's."""
    consumer = Consumer(
        as_client(bootstrap).confluent_config(
            {
                "group.id": f"chuteflow-replay-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                # The longest the broker holds a fetch while the topic has nothing new; a record
                # that arrives ends it at once (fetch.min.bytes is 1), so this adds no latency.
                # 5 ms made an idle driver ask 200 times a second: ~0.1 of a broker core that
                # the workers' aligned closes then waited for (bench fleet).
                "fetch.wait.max.ms": 100,
            }
        )
    )
    partitions = []
    for p in range(ALLOCATIONS.partitions):
        _, high = consumer.get_watermark_offsets(TopicPartition(ALLOCATIONS.name, p), timeout=10)
        partitions.append(TopicPartition(ALLOCATIONS.name, p, high))
    consumer.assign(partitions)
    return consumer


def allocation_of(value: bytes) -> AllocationDecided | None:
    """The allocation an allocations-topic record holds, None for anything else."""
    try:
        event = decode(value, ALLOCATIONS)
    except DecodeError:
        return None
    return event if isinstance(event, AllocationDecided) else None


class AllocationReader:
    """Allocations of one site from the allocations topic, from 'now' on, duplicates dropped
    (:func:`allocation_consumer`)."""

    def __init__(self, bootstrap: str | KafkaClientConfig, site_id: str) -> None:
        self.site_id = site_id
        self._consumer = allocation_consumer(bootstrap)
        self.received: dict[int, AllocationDecided] = {}
        self.duplicates = 0
        self.sent_at: dict[int, float] = {}
        """Wall time (``time.time``) the worker handed each allocation to its producer: the
        record's CreateTime, which aiokafka stamps at ``send``."""
        self.read_at: dict[int, float] = {}
        """Wall time this reader had each allocation."""

    def wait(self, interval_index: int, timeout_s: float) -> AllocationDecided:
        deadline = time.monotonic() + timeout_s
        while interval_index not in self.received:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ReplayError(
                    f"no allocation for {self.site_id} interval {interval_index} within "
                    f"{timeout_s:g} s: is a worker serving this site running?"
                )
            message = self._consumer.poll(min(left, 0.5))
            if message is None or message.error() is not None:
                continue
            if message.key() != self.site_id.encode():
                continue
            event = allocation_of(message.value() or b"")
            if event is None:
                continue
            if event.interval_index in self.received:
                self.duplicates += 1
                continue
            self.received[event.interval_index] = event
            self.read_at[event.interval_index] = time.time()
            kind, stamp = message.timestamp()
            if kind == TIMESTAMP_CREATE_TIME:
                self.sent_at[event.interval_index] = stamp / 1000.0
        return self.received[interval_index]

    def close(self) -> None:
        self._consumer.close()


class FloorRecords:
    """A site's twin events as Kafka records: each ``interval_closed`` gets
    ``events_in_interval``, the records of each floor topic since the previous close.

    Shared by :func:`replay_day`, the fleet replay (``replay/fleet.py``) and the bench's
    reference records, so all announce the same counts. Passed to the twin as its ``emit``, it
    takes the package events already encoded (:class:`twin.events.EncodedEmit`, issue 22:
    ~0.7M records a large day, the driver's CPU on cores it shares with the worker) and hands
    every record to ``send(event type, topic, event time, value)``.
    """

    def __init__(self, send: Callable[[str, str, datetime, bytes], None]) -> None:
        self._send = send
        self._topics = {kind: spec.name for kind, spec in TOPIC_FOR_EVENT.items()}
        self.counts: dict[str, int] = {}
        self.per_topic: dict[str, int] = {}
        """Records by event type, over the run."""

    def __call__(self, event: Envelope) -> None:
        """An event object: the rare ones (chute state, interval closed)."""
        kind, topic, value = self.record(event)
        self._send(kind, topic, event.event_time, value)

    def encoded(self, event_type: str, time: datetime, value: bytes) -> None:
        """A package event, already encoded: counted like :meth:`record` counts."""
        topic = self._topics[event_type]
        self.counts[topic] = self.counts.get(topic, 0) + 1
        self.per_topic[event_type] = self.per_topic.get(event_type, 0) + 1
        self._send(event_type, topic, time, value)

    def record(self, event: Envelope) -> tuple[str, str, bytes]:
        """``(event type, topic, value)`` of ``event``."""
        kind = event_type_of(event)
        topic = self._topics[kind]
        if kind == "interval_closed":
            event = event.model_copy(update={"events_in_interval": dict(self.counts)})
            self.counts.clear()
        else:
            self.counts[topic] = self.counts.get(topic, 0) + 1
        self.per_topic[kind] = self.per_topic.get(kind, 0) + 1
        return kind, topic, encode(event)


@dataclass
class ReplayResult:
    """One replayed day."""

    day: str
    """The run's day key (``contracts.events.day_key``), as in its decision ids."""
    kpis: DayKPIs
    allocations: list[AllocationDecided]
    events_published: int
    wall_seconds: float
    waited_seconds: float
    """Wall time spent waiting for allocations (worker consumption + decision + delivery)."""
    waits: list[float] = field(default_factory=list)
    """Wait per interval, seconds."""
    worker_waits: list[float] = field(default_factory=list)
    """Per interval, seconds from the moment the interval's records were all delivered to the
    broker (the driver's flush returned) to the worker sending the allocation (its CreateTime):
    the worker working off the records it has not handled yet, closing and deciding. Wall
    clocks of two processes: meaningful when driver and worker share a host."""
    delivery_waits: list[float] = field(default_factory=list)
    """Per interval, seconds from the worker sending the allocation to the driver having it
    (the worker's producer, the broker, the driver's fetch)."""
    per_topic: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        return {
            "events": self.events_published,
            "wall_s": round(self.wall_seconds, 3),
            "events_per_s": round(self.events_published / max(self.wall_seconds, 1e-9), 1),
            "waiting_for_allocations_s": round(self.waited_seconds, 3),
            "per_topic": self.per_topic,
        }


def replay_day(
    demand: DayDemand,
    seed: int,
    bootstrap: str | KafkaClientConfig,
    group: int,
    *,
    speed: float | None = None,
    allocation_timeout_s: float = 60.0,
    max_intervals: int | None = None,
    run_id: str | None = None,
    on_allocation: Callable[[AllocationDecided], None] | None = None,
) -> ReplayResult:
    """Publish ``demand`` as the twin plays it, closing the loop with the worker's allocations.

    Every replay is a new run of its day (``run_id``, random by default): its ``day_started``
    has a new ``event_id``, so the worker starts the day afresh and its decision ids differ
    from any earlier replay of the same date (a WCS dropping repeated ids drops none of them).

    With ``speed``, the time ``on_allocation`` takes is not floor time: the schedule moves on
    by it. A test's operator action there (a canary opened, a broker stopped for 40 s) would
    otherwise leave the replay that far behind, and it would then run the next intervals at
    full speed to catch up, shrinking the intervals a gate's timing is judged in.
    """
    scenario = demand.scenario
    site = scenario.site_id
    publisher = KafkaPublisher(bootstrap)
    reader = AllocationReader(bootstrap, site)
    started = time.monotonic()
    held = 0.0  # seconds spent in on_allocation: the schedule moves on by them

    def pace(moment: datetime) -> None:
        if speed is None:
            return
        due = started + held + (moment - demand.day_start).total_seconds() / speed
        delay = due - time.monotonic()
        if delay > 0:
            publisher.flush()
            time.sleep(delay)

    key = message_key(site)

    def send(kind: str, topic: str, moment: datetime, value: bytes) -> None:
        if speed is not None:
            pace(moment)
        publisher.produce(topic, key, value)

    records = FloorRecords(send)
    twin = SortationTwin(scenario, demand, seed=seed, emit=records)
    waited = 0.0
    waits: list[float] = []
    worker_waits: list[float] = []
    delivery_waits: list[float] = []
    allocations = []
    try:
        opening = DayStarted(
            event_id=day_started_id(site, demand, run_id or uuid.uuid4().hex[:12]),
            event_time=demand.day_start,
            site_id=site,
            day_start=demand.day_start,
            day_type_group=group,
        )
        day = opening.day_key()
        publisher.publish(opening)
        publisher.flush()
        last = scenario.n_intervals if max_intervals is None else max_intervals
        while not twin.done and twin.interval_index < last:
            t0, flushed = time.monotonic(), time.time()
            index = twin.interval_index
            allocation = reader.wait(index, allocation_timeout_s)
            waits.append(time.monotonic() - t0)
            if index in reader.sent_at:
                worker_waits.append(reader.sent_at[index] - flushed)
                delivery_waits.append(reader.read_at[index] - reader.sent_at[index])
            waited += waits[-1]
            allocations.append(allocation)
            if on_allocation is not None:
                t1 = time.monotonic()
                on_allocation(allocation)
                held += time.monotonic() - t1
            twin.run_interval(owner_of(scenario, allocation))
            publisher.flush()
    finally:
        reader.close()
    return ReplayResult(
        day=day,
        kpis=twin.kpis(),
        allocations=allocations,
        events_published=publisher.sent,
        wall_seconds=time.monotonic() - started,
        waited_seconds=waited,
        waits=waits,
        worker_waits=worker_waits,
        delivery_waits=delivery_waits,
        per_topic=records.per_topic,
    )
