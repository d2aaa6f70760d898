"""A faust consumer that hands the worker's input records over in fetch-sized batches.

Why this exists (measured, see ``docs`` of :mod:`stream.agents`): faust delivers every record
through ``Consumer._drain_messages`` -> ``wait_first(callback(message), ...)`` -> the
conductor -> a channel queue -> the agent's stream. That path creates several asyncio tasks
and futures per record; against the local broker it capped a plain agent at ~1.6-2.7k
records/s, far below a replayed large day (230k-750k records). ``take_events`` does not help: it
batches *after* the per-record machinery.

:class:`BatchConsumer` keeps everything faust owns -- the consumer group, partition
assignment and rebalances, the table and its changelog, offset commits, the agent -- and
changes only how records of *registered* topics travel from a fetch to the handler: the
records of one fetch (faust's own ``getmany``, which still drops records of a stale consumer
generation or of partitions no longer assigned) are handed to the handler as one list in one
await, and once it returns each record is acknowledged with faust's ``Consumer.ack``, so
offset commits move exactly as if the agent's stream had acked them. Records of every other
topic (anything else subscribed) take faust's normal per-record path.

Flow control is honoured once per batch instead of once per record
(``app.flow_control.acquire`` blocks while a rebalance suspends the flow,
``producer.buffer.wait_until_ebb`` while the producer is backed up); read offsets and offset
gaps are tracked per record as faust does.

A fetch is taken as one list (:meth:`BatchConsumer._fetch`: faust's ``getmany`` without its
async generator, the partition's end offset for the monitor read once per fetch instead of
per record) and a handled batch is acked under one hold of faust's ack lock
(:meth:`BatchConsumer._ack_all`: the same bookkeeping as ``Consumer.ack`` per message). On a
large day's heaviest type this took ~7% off the worker's event-loop CPU (issue 22); earlier,
when the worker's own record handling dominated, a similar variant measured nothing.

This overrides faust-streaming internals (``Consumer._drain_messages``, and mirrors
``getmany`` and ``ack``); the version is pinned (0.15.3) and
``tests/stream/test_replay_kafka.py`` runs the worker through it against a real broker.

Install with :func:`install` before the app starts (``stream.app.make_app`` does it); attach
the handler with :func:`set_batch_handler` (``stream.agents.register`` does it). Without a
handler the consumer behaves exactly like faust's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, zip_longest
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.utils import DefaultSchedulingStrategy
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

BatchHandler = Callable[[list[Any]], Awaitable[None]]
"""Receives the :class:`BatchRecord` objects (``topic``, ``key``, ``value``, ``partition``,
``offset``, ``tp``) of the registered topics of one fetch; each partition's records in offset
order."""


@dataclass(slots=True, eq=False)
class BatchRecord:
    """One record of a batch topic, as the handler and :meth:`BatchConsumer._ack_all` read it.

    faust's ``ConsumerMessage`` carries 17 fields (timestamps, headers, sizes, reference count,
    tracking) for its stream machinery, which the batch path bypasses; building one per record
    cost more than the whole batch hand-over. The attribute names are faust's, so the handler
    reads either kind (``stream.agents`` also gets faust's messages when not installed).
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    tp: Any
    acked: bool = False


_GAP = object()


def _round_robin(buffers: Sequence[Sequence[Any]]) -> Iterator[Any]:
    """One item of each buffer in turn, an exhausted buffer dropping out: the order of faust's
    ``TopicBuffer`` and ``records_iterator`` loops, built by ``zip_longest`` in C."""
    if len(buffers) == 1:
        return iter(buffers[0])
    return (
        item
        for item in chain.from_iterable(zip_longest(*buffers, fillvalue=_GAP))
        if item is not _GAP
    )


def interleaved(records: Mapping[Any, Sequence[Any]]) -> Iterator[tuple[Any, Any]]:
    """``(tp, record)`` of one fetch in faust's ``DefaultSchedulingStrategy`` order (0.15.3):
    round-robin over topics in order of first appearance, each topic's turn taking the next
    record round-robin over its partitions in insertion order."""
    by_topic: dict[str, list[list[tuple[Any, Any]]]] = {}
    for tp, tp_records in records.items():
        by_topic.setdefault(tp.topic, []).append([(tp, record) for record in tp_records])
    return _round_robin([list(_round_robin(parts)) for parts in by_topic.values()])


class BatchConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer with a batch path for the topics in ``batch_topics``."""

    batch_topics: frozenset[str] = frozenset()
    batch_handler: BatchHandler | None = None

    def _new_consumer_thread(self) -> Any:  # pragma: no cover - needs Kafka
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    before_commit: Callable[[], None] | None = None
    """Called before every offset commit, ahead of faust's producer flush: the worker writes
    the table snapshots it deferred (``stream.agents``), so a committed offset never runs
    ahead of the snapshot that includes it."""

    async def force_commit(self, *args: Any, **kwargs: Any) -> bool:  # pragma: no cover - Kafka
        # Every commit path (the commit timer, ``commit_every``, stop, rebalance) ends here.
        if self.before_commit is not None:
            self.before_commit()
        return bool(await super().force_commit(*args, **kwargs))

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - needs Kafka
        if self.batch_handler is None:
            await super()._drain_messages(fetcher)
            return
        handler = self.batch_handler
        batch_topics = self.batch_topics
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                batch: list[Any] = []
                await self.sleep(0)
                if self.should_stop:
                    continue
                generation, active, fetched = await self._fetch()
                awaited = False
                for tp, message in fetched:
                    if awaited:
                        # the loop ran other tasks since the fetch (faust's generator would
                        # see a stopped flow, a new generation or a revoked partition now)
                        if not self.flow_active or self.app.consumer_generation_id != generation:
                            break
                        if not (active is None or tp in active or tp in self._buffered_partitions):
                            continue
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is not None and offset < r_offset:
                        continue  # already read (faust drops these too)
                    gap = offset - (r_offset or 0)
                    if gap > 1 and r_offset and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                        awaited = True
                    set_read_offset(tp, offset)
                    if message.topic in batch_topics:
                        batch.append(message)
                    else:
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                        awaited = True
                if not batch:
                    continue
                await self.app.flow_control.acquire()
                await self.app.producer.buffer.wait_until_ebb()
                await handler(batch)
                self._ack_all(batch)
                commit_every = self._commit_every
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise

    async def _fetch(
        self,
    ) -> tuple[int, set[Any] | None, list[tuple[Any, Any]]]:  # pragma: no cover - needs Kafka
        """One fetch as ``(tp, message)`` in faust's order: ``Consumer.getmany`` (0.15.3)
        without its async generator, which costs a coroutine step per record.

        Same records and stops as faust's: round-robin over topics, nothing once the flow
        stops (then a seek back to the committed offsets) or the consumer generation changes
        mid-fetch, only partitions still active. The one difference: the monitor's end offset
        of a partition is read once per fetch (faust reads it per record; it only feeds
        monitoring). Returns the consumer generation and the active partitions the records were
        checked against, for the caller to check again after anything it awaits.

        Two costs per record are cut (issue 22; faust's order and checks kept): the
        round-robin is :func:`interleaved` (C-level ``zip_longest`` instead of faust's two nested
        generators, ~1 us a record), and a record of a batch topic becomes a
        :class:`BatchRecord` instead of faust's 17-field ``ConsumerMessage``. The flow and the
        generation are checked once: nothing else runs on the event loop while the fetch is
        turned into a list, so faust's per-record checks could not fire in between.
        """
        records, active_partitions = await self._wait_next_records(1.0)
        app = self.app
        generation_id = app.consumer_generation_id
        if records is None or self.should_stop:
            return generation_id, active_partitions, []
        if not self.flow_active:
            self.log.dev("getmany called while flow not active. Seek back to committed offsets.")
            try:
                await self.perform_seek()
            except Exception as ex:
                self.log.warning(f"exception performing seek when flow not active {ex}")
            return generation_id, active_partitions, []
        buffered = self._buffered_partitions
        track_end = app.monitor.track_tp_end_offset
        batch_topics = self.batch_topics
        taken: dict[Any, list[Any]] = {}
        for tp, tp_records in records.items():
            if active_partitions is None or tp in active_partitions or tp in buffered:
                track_end(tp, self.highwater(tp))
                taken[tp] = tp_records
        if type(self.scheduler) is DefaultSchedulingStrategy:
            ordered: Iterable[tuple[Any, Any]] = interleaved(taken)
        else:  # a custom ConsumerScheduler decides the order itself
            ordered = self.scheduler.iterate(taken)
        to_message = self._to_message
        out: list[tuple[Any, Any]] = []
        for tp, record in ordered:
            if record.topic in batch_topics:
                out.append(
                    (
                        tp,
                        BatchRecord(
                            record.topic,
                            record.partition,
                            record.offset,
                            record.key,
                            record.value,
                            tp,
                        ),
                    )
                )
            else:
                out.append((tp, to_message(tp, record)))
        return generation_id, active_partitions, out

    def _ack_all(self, batch: list[Any]) -> None:
        """``Consumer.ack`` (0.15.3) for every record of a handled batch, under one hold of
        faust's ack lock and with one wake-up of a commit waiting for acks: the same offsets
        are marked acked, in the same order, as by one ``ack`` per message."""
        acks_enabled_for = self.app.topics.acks_enabled_for
        enabled: dict[str, bool] = {}
        committed_offsets, acked_indexes, acked = (
            self._committed_offset,
            self._acked_index,
            self._acked,
        )
        notified = False
        with ack_lock:
            try:
                for message in batch:
                    if message.acked:
                        continue
                    message.acked = True
                    topic = message.topic
                    on = enabled.get(topic)
                    if on is None:
                        on = enabled[topic] = bool(acks_enabled_for(topic))
                    if not on:
                        continue
                    notified = True
                    tp, offset = message.tp, message.offset
                    committed = committed_offsets[tp]
                    if committed is None or offset >= committed:
                        acked_index = acked_indexes[tp]
                        if offset not in acked_index:
                            # (faust discards the message from _unacked_messages here: a
                            # batch record is never tracked there)
                            acked_index.add(offset)
                            acked[tp].append(offset)
                            self._n_acked += 1
            finally:
                if notified:
                    notify(self._waiting_for_ack)


FETCH_MIN_BYTES = 32 * 1024
"""A fetch returns once this much is waiting on the worker's partitions, or after
:data:`FETCH_MAX_WAIT_MS`. aiokafka's default (1 byte) answers every fetch as soon as any record
exists: a fleet worker at 10x real time, fed a few records of many sites every few ms, then made
~200 fetches a second, and the fetch loop and its thread hand-offs (faust runs aiokafka in its
own thread) took most of its CPU (py-spy, 45 sites: the worker's own handling was ~15 %)."""
FETCH_MAX_WAIT_MS = 20
"""The longest a record waits in the broker for :data:`FETCH_MIN_BYTES` to gather: 20 ms on an
interval close (against a deadline of a second or more), and an idle worker fetches 50 times a
second instead of faust's 1500 ms long poll."""


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's aiokafka consumer thread with the worker's fetch sizes
    (:data:`FETCH_MIN_BYTES`, :data:`FETCH_MAX_WAIT_MS`); faust hard-codes the wait (1500 ms)
    and leaves the minimum at aiokafka's 1 byte."""

    def _create_worker_consumer(self, transport: Any) -> Any:  # pragma: no cover - Kafka
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start() when it builds its Fetcher: set before start
        consumer._fetch_min_bytes = FETCH_MIN_BYTES
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class BatchTransport(faust_aiokafka.Transport):
    """The aiokafka transport whose consumers are :class:`BatchConsumer`."""

    Consumer = BatchConsumer


def install(app: faust.App) -> None:
    """Make ``app`` consume through :class:`BatchConsumer` (before its consumer exists)."""
    conf = app.conf
    app.transport = BatchTransport(conf.broker_consumer, app)


def set_batch_handler(
    app: faust.App,
    topics: Iterable[str],
    handler: BatchHandler,
    before_commit: Callable[[], None] | None = None,
) -> bool:
    """Route records of ``topics`` to ``handler`` in batches, and call ``before_commit`` ahead
    of each offset commit; False if not installed."""
    consumer = app.consumer
    if not isinstance(consumer, BatchConsumer):
        return False
    consumer.batch_topics = frozenset(topics)
    consumer.batch_handler = handler
    consumer.before_commit = before_commit
    return True
