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

This overrides a faust-streaming internal (``Consumer._drain_messages``); the version is
pinned (0.15.3) and ``tests/stream/test_replay_kafka.py`` runs the worker through it against
a real broker. A leaner variant that skipped faust's ``getmany``/``ack`` per record (bulk
acks into faust's ack bookkeeping) saved no measurable time and was dropped.

Install with :func:`install` before the app starts (``stream.app.make_app`` does it); attach
the handler with :func:`set_batch_handler` (``stream.agents.register`` does it). Without a
handler the consumer behaves exactly like faust's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

BatchHandler = Callable[[list[Any]], Awaitable[None]]
"""Receives faust ``ConsumerMessage`` objects (``topic``, ``key``, ``value``, ``partition``,
``offset``) of the registered topics of one fetch; each partition's records in offset order."""


class BatchConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer with a batch path for the topics in ``batch_topics``."""

    batch_topics: frozenset[str] = frozenset()
    batch_handler: BatchHandler | None = None

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
        ack = self.ack
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                batch: list[Any] = []
                await self.sleep(0)
                if self.should_stop:
                    continue
                # faust's getmany: drops records of a stale generation or of partitions no
                # longer assigned, and seeks back when the flow stopped mid-fetch.
                async for tp, message in self.getmany(timeout=1.0):
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is not None and offset < r_offset:
                        continue  # already read (faust drops these too)
                    gap = offset - (r_offset or 0)
                    if gap > 1 and r_offset and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    set_read_offset(tp, offset)
                    if message.topic in batch_topics:
                        batch.append(message)
                    else:
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                if not batch:
                    continue
                await self.app.flow_control.acquire()
                await self.app.producer.buffer.wait_until_ebb()
                await handler(batch)
                for message in batch:
                    ack(message)
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


class BatchTransport(faust_aiokafka.Transport):
    """The aiokafka transport whose consumers are :class:`BatchConsumer`."""

    Consumer = BatchConsumer


def install(app: faust.App) -> None:
    """Make ``app`` consume through :class:`BatchConsumer` (before its consumer exists)."""
    conf = app.conf
    app.transport = BatchTransport(conf.broker_consumer, app)


def set_batch_handler(app: faust.App, topics: Iterable[str], handler: BatchHandler) -> bool:
    """Route records of ``topics`` to ``handler`` in batches; False if not installed."""
    consumer = app.consumer
    if not isinstance(consumer, BatchConsumer):
        return False
    consumer.batch_topics = frozenset(topics)
    consumer.batch_handler = handler
    return True
