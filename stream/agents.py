"""The worker's faust agent: Kafka bytes in, :class:`StreamProcessor` records out. I/O only.

One agent consumes every input topic (inductions, sortation, chute state, intervals): faust
assigns the topics of one agent co-partitioned, so all of a site's records reach the same
worker, and one handler applies them in the order consumed. faust's per-record delivery is the
measured bottleneck (every record went through several asyncio tasks; a large replayed day ran
at ~1.6k records/s and ``take_events`` batching did not help because it batches after that
machinery), so the app's consumer is :class:`stream.batching.BatchConsumer`: it hands each
fetch of the input topics to :func:`register`'s ``process`` as one list. Without it (an app
made without ``stream.batching.install``) the agent's stream feeds the same ``process`` through
``take_events``. The processor's outputs are sent before the batch's offsets are acknowledged.

The table holds one JSON snapshot per site, with the site's input partition as changelog
partition (faust's ``table[key] = v`` takes the partition from the "current event", which a
batch does not have). A site that decided in a batch is written at once, with the batch's
outputs; a site that only took floor records is written at the latest before the next offset
commit (``stream.batching.BatchConsumer.before_commit``, every 2.8 s or 10,000 records) and
before a rebalance. Writing every touched site after every fetch cost 35-40 % of a fleet
worker's time (a large site mid-interval is ~33 KB of JSON, and at 10x a fetch holds a few
records of many sites) and filled the changelog that a new owner must read back.

Exactly-once effect on state: each snapshot carries the input offsets it includes
(``SiteRuntime.offsets``). Deferred snapshots are written before faust flushes the producer
(outputs and snapshots) and commits offsets, so the committed offset never runs ahead of the
snapshot; after a crash the records between the commit and the snapshot are redelivered and
skipped by offset, and the ones after it are applied once. A decision is never lost behind a
deferred write: its site is written with it, so a successor does not decide it again.

When a partition is revoked (a rebalance, a worker joining or
leaving) its sites are forgotten here and restored from the table when they next appear, so a
worker that gets a site back continues from what its last owner wrote, not from its own stale
copy.

Site catalog changes (``stream/site_catalog.py``, a worker started with ``--catalog``) are
applied here, on the event loop, before each batch and on each timer tick: a new site is
served at once, a changed one from its next ``day_started``; a removed one is dropped with its
table snapshot (a changelog tombstone), so a site added again later starts afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust

from contracts.topics import CONTROL, PARTITIONS, SITE_TOPICS, kafka_partition, message_key
from stream.batching import set_batch_handler
from stream.health import Readiness
from stream.inputs import INPUT_TOPICS
from stream.processor import StreamProcessor
from stream.site_catalog import SiteChange
from stream.worker_log import log_event

log = logging.getLogger(__name__)

BATCH = 4096
"""Records per batch: large enough to amortize faust's per-batch costs."""
BATCH_WITHIN_S = 0.002
"""Longest wait for a batch to fill: the closed loop waits on every interval close."""


def register(
    app: faust.App,
    processor: StreamProcessor,
    table: Any,
    *,
    ready_file: Path | None = None,
    timer_seconds: float = 1.0,
    readiness: Readiness | None = None,
    catalog: Callable[[], list[SiteChange]] | None = None,
) -> None:
    """Attach the agent, the close timer and the readiness marker to ``app``.

    ``readiness`` (``/readyz``) is told when partitions are assigned and revoked, and its
    event-loop tick comes from the close timer. ``catalog`` hands over the site catalog's
    changes since it was last called (``CatalogFollower.drain``).
    """
    source = app.topic(
        *(spec.name for spec in INPUT_TOPICS),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=PARTITIONS,
    )
    outputs = {
        spec.name: app.topic(
            spec.name, key_serializer="raw", value_serializer="raw", partitions=spec.partitions
        )
        for spec in SITE_TOPICS
    }
    restored: set[str] = set()

    def restore(site_id: str) -> None:
        # The table is recovered before agents start; load a site the first time we see it.
        if site_id in restored:
            return
        restored.add(site_id)
        snapshot = table.get(site_id)
        site = processor.sites.get(site_id)
        if snapshot is not None and site is not None and not site.day_open:
            site.restore(snapshot)
            log.info("site %s restored at interval %s", site_id, site.tracker.interval_index)

    input_names = {spec.name for spec in INPUT_TOPICS}

    idle = asyncio.Event()
    idle.set()

    async def forget_revoked(sender: Any, revoked: Any = None, **kwargs: Any) -> None:
        # Eager rebalancing revokes every partition, also the ones that come straight back:
        # the site is then restored from the table (our own last snapshot), the same state.
        # A batch in flight finishes first and its outputs and snapshots are flushed, so the
        # next owner recovers a table that includes every record this worker applied.
        if readiness is not None:
            readiness.assigned = False
        await idle.wait()
        write_table()  # deferred snapshots first: the next owner must see every applied record
        await app.producer.flush()
        lost = {tp.partition for tp in (revoked or ()) if tp.topic in input_names}
        for site_id, site in processor.sites.items():
            if kafka_partition(message_key(site_id), PARTITIONS) in lost:
                site.reset()
                restored.discard(site_id)
                processor.dirty.discard(site_id)

    app.on_partitions_revoked.connect(forget_revoked)  # type: ignore[arg-type]

    def apply_catalog() -> None:
        if catalog is None:
            return
        for change in catalog():
            site_id = change.site_id
            if change.site is not None:
                how = processor.add_site(site_id, change.site)
                if how == "added":
                    restored.discard(site_id)  # a snapshot, if any, loads on its first record
                when = "served" if how == "added" else "serves from its next day"
                log_event(
                    log,
                    logging.INFO,
                    f"site {site_id}: catalog revision {change.revision} {when}",
                    {"event": f"site_{how}", "site": site_id, "revision": change.revision},
                )
                continue
            processor.remove_site(site_id)
            restored.discard(site_id)
            table.data.pop(site_id, None)
            # Every worker writes the tombstone: whoever owns the partition now, the next
            # owner must not restore the removed site's state (idempotent on a compacted topic).
            partition = kafka_partition(message_key(site_id), PARTITIONS)
            table.send_changelog(
                partition, site_id, None, key_serializer="json", value_serializer="raw"
            )
            log_event(
                log,
                logging.INFO,
                f"site {site_id}: removed from the catalog, its state deleted",
                {"event": "site_removed", "site": site_id},
            )

    async def publish(records: list[Any]) -> None:
        for record in records:
            await outputs[record.topic].send(key=record.key, value=record.value)

    def write_site(site_id: str) -> None:
        site = processor.sites.get(site_id)
        if site is None or site.partition is None:
            return
        snapshot = site.snapshot()
        table.data[site_id] = snapshot
        table.send_changelog(
            site.partition, site_id, snapshot, key_serializer="json", value_serializer="json"
        )

    def write_table() -> None:
        """Every site changed since its last snapshot (before a commit, a rebalance, a tick)."""
        for site_id in processor.dirty:
            write_site(site_id)
        processor.dirty.clear()

    def write_decided(records: list[Any]) -> None:
        """The snapshots of the sites that published in this batch (the rest wait)."""
        for site_id in {record.key.decode("utf-8", "replace") for record in records}:
            if site_id in processor.dirty:
                write_site(site_id)
                processor.dirty.discard(site_id)

    async def process(messages: list[Any]) -> None:
        """Apply records in consumption order, publishing each record's outputs as they come.

        Records of partitions this worker no longer owns (a batch fetched before a rebalance
        and handed over after it) are left alone: their new owner reads them.
        """
        idle.clear()
        try:
            await _process(messages)
        finally:
            idle.set()

    async def _process(messages: list[Any]) -> None:
        apply_catalog()
        owned = app.consumer.assignment()
        # Routes first: a route written before an interval's close applies at that close's
        # decision even when one fetch hands both over, the route last. Its store policies
        # are fetched off the event loop (a cold cache reads the policy topic).
        routes = [m for m in messages if m.topic == CONTROL.name]
        if routes:
            messages = routes + [m for m in messages if m.topic != CONTROL.name]
            await asyncio.to_thread(processor.prefetch, [m.value for m in routes])
        # A fetch holds long runs of one site's records on one partition: the ownership and
        # restore checks are made once per run, not per record (~1 us a record, issue 22).
        last_tp: Any = None
        last_key: Any = None
        for message in messages:
            tp = message.tp
            if tp != last_tp:
                if tp not in owned:
                    continue
                last_tp, last_key = tp, None
            if message.key is not None and message.key != last_key:
                last_key = message.key
                # A record on another partition than its site's is dead-lettered by the
                # processor; it must not load the site's state into a worker that does not
                # own the site's partition either.
                with contextlib.suppress(UnicodeDecodeError):
                    site_id = message.key.decode("utf-8")
                    if processor.wrong_partition(site_id, message.partition) is None:
                        restore(site_id)
            out = processor.handle(
                message.topic, message.key, message.value, message.partition, message.offset
            )
            if out:
                # At once, not after the whole fetch: when a hundred sites close together one
                # fetch holds their closes, and the first site's allocation waited for the
                # last site's decision (bench fleet: allocations went out in two bursts, 0.3 s
                # and 0.5 s after the closes). A deciding site's snapshot follows its outputs.
                await publish(out)
                if batched:
                    write_decided(out)
        if not batched:
            write_table()  # faust's own stream path: no commit hook, write every batch

    batched = set_batch_handler(
        app, (spec.name for spec in INPUT_TOPICS), process, before_commit=write_table
    )

    @app.agent(source, name="chuteflow-sites")
    async def sites(stream: Any) -> None:
        if batched:
            # The batch consumer (stream.batching) hands the input records to ``process`` one
            # fetch at a time; nothing reaches this stream. The agent stays: it is what
            # subscribes the topics (co-partitioned assignment). Iterating without
            # ``take_events`` keeps it asleep: take_events' ``within`` timer would wake it
            # every 2 ms for nothing (measured: ~15 % of a core while idle).
            async for event in stream:
                await process([event.message])
        else:
            async for events in stream.take_events(BATCH, within=BATCH_WITHIN_S):
                await process([event.message for event in events])

    @app.timer(interval=timer_seconds)  # type: ignore[untyped-decorator]
    async def close_timer() -> None:
        if readiness is not None:
            readiness.tick()
        apply_catalog()
        out = processor.on_timer()
        if out:
            await publish(out)
            if idle.is_set():  # never mid-batch: a batch writes its deciding sites itself
                write_decided(out)

    if readiness is not None:

        async def assigned(sender: Any, **kwargs: Any) -> None:
            readiness.assigned = True

        app.on_rebalance_complete.connect(assigned)  # type: ignore[arg-type]

    if ready_file is not None:

        async def mark_ready(sender: Any, **kwargs: Any) -> None:
            # Written after every rebalance: the agent owns these partitions from here on
            # (which ones tells a test when a group of several workers has settled). Replaced
            # atomically: a reader never sees half a file.
            assigned: dict[str, list[int]] = {name: [] for name in sorted(input_names)}
            for tp in app.consumer.assignment():
                if tp.topic in input_names:
                    assigned[tp.topic].append(tp.partition)
            body = {"pid": os.getpid(), "assigned": {k: sorted(v) for k, v in assigned.items()}}
            partial = ready_file.with_name(ready_file.name + ".tmp")
            partial.write_text(json.dumps(body, sort_keys=True) + "\n")
            os.replace(partial, ready_file)

        app.on_rebalance_complete.connect(mark_ready)  # type: ignore[arg-type]
