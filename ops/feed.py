"""The page's Kafka follower: one consumer thread that keeps :class:`ops.model.OpsModel` current.

It reads each record once. At start it finds, per partition, where the sites' latest days
began (their ``day_started`` records on the intervals topic, which is small: a few hundred
records a day) and starts the floor, allocation and shadow topics there, so a page opened in
the afternoon does not replay last month; the control topic (compacted: every site's routes),
the intervals topic and the gate's topic are read from their beginning, the dead letters from
the last 24 hours (or the oldest open day, if earlier); a partition with no day yet is read
from 24 hours ago too, so a day that starts while the page starts up is not missed. After that
it follows the ends of every topic as they grow.

No consumer group and no commits (``assign``, not ``subscribe``): every page process reads
every partition for itself and leaves no trace on the brokers. A broker that goes away is
reported on the page (``status``) and the consumer keeps retrying; it never stops the page.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from contracts.codec import DecodeError, decode
from contracts.events import DayStarted
from contracts.topics import (
    ALLOCATIONS,
    CANARY,
    CHUTE_STATE,
    CONTROL,
    DEAD_LETTER,
    INDUCTIONS,
    INTERVALS,
    SHADOW,
    SORTATION,
)
from ops.model import OpsModel
from stream.clients import KafkaClientConfig, as_client
from stream.topic_reader import Record, read_to_end

FROM_DAY_START = (INDUCTIONS, SORTATION, CHUTE_STATE, ALLOCATIONS, SHADOW, DEAD_LETTER)
"""Topics read from where the sites' latest days began (chute states for the shadow twin's
outages, ``ops/twin_days.py``)."""
DEAD_LETTER_LOOKBACK_S = 24 * 3600.0
"""Dead letters are counted from this long ago, or from the oldest open day if earlier."""
CATCH_UP_FIRST_S = 60.0
"""At most this long reading the control, intervals and gate topics alone at start."""
LOOK_EVERY_S = 5.0
"""How often the follower checks the broker and looks for topics created since it started."""


@dataclass
class FeedStatus:
    """What the page says about its own feed."""

    started: float = field(default_factory=time.time)
    connected: bool = False
    caught_up: bool = False
    error: str | None = None
    error_since: float | None = None
    last_record: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def day_start_offsets(
    client: KafkaClientConfig, *, timeout_s: float = 60.0
) -> dict[int, int | None]:
    """Per intervals partition, the Kafka time of the earliest of its sites' latest
    ``day_started`` records (None: no day on that partition yet)."""
    latest: dict[str, tuple[int, int]] = {}  # site -> (partition, timestamp)
    for record in read_to_end(client, [INTERVALS.name], timeout_s=timeout_s):
        if record.value is None:
            continue
        try:
            event = decode(record.value)
        except DecodeError:
            continue
        if isinstance(event, DayStarted):
            latest[event.site_id] = (record.partition, record.timestamp_ms)
    out: dict[int, int | None] = dict.fromkeys(range(INTERVALS.partitions))
    for partition, stamp in latest.values():
        current = out.get(partition)
        out[partition] = stamp if current is None else min(current, stamp)
    return out


class KafkaFeed:
    """The follower thread. :meth:`start` returns at once; :meth:`stop` ends it."""

    def __init__(self, client: str | KafkaClientConfig, model: OpsModel) -> None:
        self.client = as_client(client)
        self.model = model
        self.status = FeedStatus()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ops-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _fail(self, message: str) -> None:
        if self.status.error is None:
            self.status.error_since = time.time()
        self.status.error = message
        self.status.connected = False

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
                return
            except Exception as error:  # the page keeps serving; it says why it has no feed
                self._fail(f"{type(error).__name__}: {error}".splitlines()[0][:300])
                self._stop.wait(2.0)

    def _assignment(self, consumer: Any) -> tuple[list[Any], dict[tuple[str, int], int]]:
        """Start offsets of every partition, and the end offsets the page must reach to be
        caught up."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        starts = day_start_offsets(self.client)
        lookback = int(1e3 * (time.time() - DEAD_LETTER_LOOKBACK_S))
        dead_since = min(lookback, _min(starts) or lookback)
        self.model.dead_since_ms = dead_since
        metadata = consumer.list_topics(timeout=10.0)
        assignment: list[Any] = []
        ends: dict[tuple[str, int], int] = {}
        highs: dict[tuple[str, int], int] = {}
        times: list[Any] = []
        from_beginning = [CONTROL.name, INTERVALS.name, CANARY.name]
        for name in [*from_beginning, *(spec.name for spec in FROM_DAY_START)]:
            meta = metadata.topics.get(name)
            if meta is None or meta.error is not None:
                continue  # not created yet (a fresh broker): nothing to show from it
            for number in sorted(meta.partitions):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(name, number), timeout=10.0
                )
                highs[(name, number)] = high
                if high > low:
                    ends[(name, number)] = high
                if name in from_beginning:
                    assignment.append(TopicPartition(name, number, OFFSET_BEGINNING))
                    continue
                stamp = starts.get(number) if name != DEAD_LETTER.name else dead_since
                # No day on the partition when the page looked: a day may start while the page
                # starts up, so read from the lookback, not from the end (records of no day
                # are few, and the model drops them).
                times.append(TopicPartition(name, number, lookback if stamp is None else stamp))
        if times:
            for found in consumer.offsets_for_times(times, timeout=10.0):
                if found.offset < 0:  # nothing at or after the day's start: from the end
                    # as it was BEFORE the time lookup: a record written since (a day starting
                    # while the page starts up) is read, never skipped
                    ends.pop((found.topic, found.partition), None)
                    high = highs[(found.topic, found.partition)]
                    found = TopicPartition(found.topic, found.partition, high)
                assignment.append(found)
        return assignment, ends

    def _look(self, consumer: Any, assigned: set[str]) -> set[str]:
        """Check the broker answers (clears a reported outage) and follow topics created since
        the page started, from their beginning; returns the topics added."""
        from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

        try:
            metadata = consumer.list_topics(timeout=5.0)
        except KafkaException as failure:
            self._fail(f"broker: {failure.args[0].str()}")
            return set()
        self.status.error = self.status.error_since = None
        self.status.connected = True
        wanted = [
            CONTROL.name,
            INTERVALS.name,
            CANARY.name,
            *(spec.name for spec in FROM_DAY_START),
        ]
        added = []
        for name in wanted:
            meta = metadata.topics.get(name)
            if name in assigned or meta is None or meta.error is not None:
                continue
            added += [TopicPartition(name, p, OFFSET_BEGINNING) for p in sorted(meta.partitions)]
        if added:
            consumer.incremental_assign(added)
        return {tp.topic for tp in added}

    def _follow(self) -> None:
        from confluent_kafka import Consumer

        consumer = Consumer(
            self.client.confluent_config(
                {
                    "group.id": f"chuteflow-ops-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 100,
                    "log_level": 0,
                    "error_cb": lambda error: self._fail(str(error)),
                }
            )
        )
        try:
            assignment, ends = self._assignment(consumer)
            pending = dict(ends)
            self.status.caught_up = not pending
            # The day-defining topics first, to their ends: a floor record whose day_started
            # the model has not seen yet is dropped, and one consumer delivers its topics in no
            # particular order while catching up.
            first_topics = {CONTROL.name, INTERVALS.name, CANARY.name}
            consumer.assign([tp for tp in assignment if tp.topic in first_topics])
            self.status.connected = True
            self.status.error = self.status.error_since = None
            deadline = time.monotonic() + CATCH_UP_FIRST_S
            while any(key[0] in first_topics for key in pending) and not self._stop.is_set():
                self._take(consumer.consume(5_000, 0.2), pending)
                if time.monotonic() > deadline:
                    break  # keep following: the page says what it has
            consumer.incremental_assign([tp for tp in assignment if tp.topic not in first_topics])
            assigned = {tp.topic for tp in assignment}
            next_look = time.monotonic() + LOOK_EVERY_S
            while not self._stop.is_set():
                if time.monotonic() >= next_look:
                    assigned |= self._look(consumer, assigned)
                    next_look = time.monotonic() + LOOK_EVERY_S
                self._take(consumer.consume(5_000, 0.2), pending)
                if not pending and not self.status.caught_up:
                    self.status.caught_up = True
        finally:
            consumer.close()

    def _take(self, messages: list[Any], pending: dict[tuple[str, int], int]) -> None:
        """Apply consumed messages to the model; clear the partitions they caught up."""
        for message in messages:
            if message.error() is not None:
                continue
            topic, partition = str(message.topic()), int(message.partition() or 0)
            offset = int(message.offset() or 0)
            self.model.apply(
                Record(
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    key=message.key(),
                    value=message.value(),
                    timestamp_ms=message.timestamp()[1],
                )
            )
            end = pending.get((topic, partition))
            if end is not None and offset >= end - 1:
                del pending[(topic, partition)]
        if messages:
            self.status.last_record = time.time()
            if self.status.error is not None:
                self.status.error = self.status.error_since = None
                self.status.connected = True


def _min(starts: dict[int, int | None]) -> int | None:
    stamps = [stamp for stamp in starts.values() if stamp is not None]
    return min(stamps) if stamps else None


__all__ = ["FeedStatus", "KafkaFeed", "day_start_offsets"]
