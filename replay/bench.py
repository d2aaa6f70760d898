"""``chuteflow bench replay``: a day at max speed through a broker and a worker, timed, beside
the raw Kafka floor of the same records measured in the same run.

The lockstep replay (``replay.loop.replay_day``) is the closed loop: the twin publishes an
interval, the worker consumes, checks and counts every record, closes the interval and
decides, and the twin waits for that allocation before it plays the next interval.

The raw floor is what Kafka and the contract codec cost with nothing else: the day's records
(same topics' partition counts, same keys, same encoded values, regenerated from the twin under
the allocations the replay received) are produced with the replay's own producer
(:class:`~replay.publisher.KafkaPublisher`) while a plain consumer in another process (as the
worker is) reads them and decodes each with :func:`contracts.codec.decode`, timed from the
first produce to the last decode. They go to throw-away copies of the input topics (deleted
afterwards), never to the real ones: a worker of the broker given must not see a second copy
of the day. ``ratio`` = replay wall / raw wall.

The transport floor (``transport_*``, :mod:`replay.transport_floor`) is the same produce with
the worker's own faust app and batch consumer reading and decoding, nothing else:
``transport_ratio`` = its wall / the raw wall is what the transport fixed by the design card
(faust-streaming on aiokafka) costs, so ``ratio / transport_ratio`` is what the worker's own
work per record and the closed loop's waits cost on top.

Two bounds from CPU, each over the raw wall: a site is one partition, served by one worker
process whose Python runs under one GIL, so the lockstep cannot finish much sooner than that
process's CPU over the replay (``worker_cpu_ratio``; its threads overlap only outside the GIL,
in socket calls), nor a worker sooner than its transport's consumer CPU alone
(``transport_cpu_ratio``). When ``worker_cpu_ratio`` is above the target, no cut outside the
worker's per-record path can meet it, and more cores do not help one site.

``round_trip_ms`` splits the replay's waits for allocations (:func:`round_trip_ms`);
``worker_cpu_s`` is the worker process's CPU over the replay (procfs), beside ``driver_cpu_s``
(the twin building and encoding events, and producing them); ``machine_busy_share`` is the
whole machine's CPU busy over the replay (1.0: every core was busy).

Measured (issue 22, large day, group 20, quiet machine): the wait is almost all the worker
still handling the interval's records when the driver's last one is delivered (~21 us of CPU a
record on this round's machine, ~8-10 of them in ``StreamProcessor.handle``, the rest faust's
and aiokafka's; the driver ~8 us making and producing one); the allocation's trip back to the
driver is ~4 ms. So the wait follows the worker's cost per record, not the producers' linger or
the consumers' fetch waits.

Argument parsing (and starting a throw-away local broker when none is given) lives in
:mod:`chuteflow.cli.bench`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime
    from multiprocessing.connection import Connection

    from contracts.events import AllocationDecided
    from contracts.topics import TopicSpec
    from replay.loop import ReplayResult
    from stream.clients import KafkaClientConfig
    from twin.day import DayDemand

RAW_TIMEOUT_S = 600.0
"""Longest the raw floor's consumer may take for one day's records."""


def bench_replay(
    scenario_name: str,
    group: int,
    seed: int,
    bootstrap: str | KafkaClientConfig,
    max_intervals: int | None = None,
    policy: str = "proportional",
    *,
    raw: bool = True,
    transport: bool = True,
) -> dict[str, object]:
    """Replay a day at max speed through the broker at ``bootstrap`` and a worker process;
    time it; then (``raw``) the raw floor of the same records (module docstring). The worker
    is a fresh consumer group started before the clock runs."""
    from floor.daytypes import default_groups
    from floor.scenario import load_scenario
    from replay.loop import day_type_group, replay_day
    from replay.workers import machine_cpu_ticks, running_worker
    from stream.admin import ensure_topics
    from twin.groups import sample_day

    scenario = load_scenario(scenario_name)
    groups = default_groups(scenario)
    demand = sample_day(groups, group, scenario, seed=seed)
    ensure_topics(bootstrap)
    with tempfile.TemporaryDirectory(prefix="chuteflow-bench-") as tmp:
        app_id = f"bench-{uuid.uuid4().hex[:8]}"
        with running_worker(
            bootstrap, [scenario_name], Path(tmp) / "worker", app_id=app_id, policy=policy
        ) as worker:
            worker_cpu0 = process_cpu_s(worker.pid)
            machine0 = machine_cpu_ticks()
            t0 = time.monotonic()
            cpu0 = os.times()
            result = replay_day(
                demand,
                seed,
                bootstrap,
                day_type_group(groups, demand),
                max_intervals=max_intervals,
                allocation_timeout_s=600.0,
            )
            wall = time.monotonic() - t0
            cpu1 = os.times()
            worker_cpu1 = process_cpu_s(worker.pid)
            machine1 = machine_cpu_ticks()
    intervals = len(result.allocations)
    out: dict[str, object] = {
        "scenario": scenario_name,
        "intervals": intervals,
        "of_intervals": scenario.n_intervals,
        "events": result.events_published,
        "wall_s": round(wall, 2),
        "events_per_s": round(result.events_published / wall, 1),
        "waiting_for_allocations_s": round(result.waited_seconds, 2),
        "driver_busy_s": round(wall - result.waited_seconds, 2),
        "driver_cpu_s": round(cpu1.user - cpu0.user + cpu1.system - cpu0.system, 2),
        "round_trip_ms": round_trip_ms(result),
    }
    worker_cpu = None if worker_cpu0 is None or worker_cpu1 is None else worker_cpu1 - worker_cpu0
    if worker_cpu is not None:
        out["worker_cpu_s"] = round(worker_cpu, 2)
        out["worker_cpu_us_per_record"] = round(
            1e6 * worker_cpu / max(result.events_published, 1), 2
        )
    if machine0 is not None and machine1 is not None:
        busy, total = machine1[0] - machine0[0], machine1[1] - machine0[1]
        out["machine_busy_share"] = round(busy / max(total, 1), 3)
    if raw:
        records = day_records(demand, seed, result.allocations)
        if len(records) + 1 != result.events_published:  # + the replay's day_started
            raise RuntimeError(
                f"regenerated {len(records)} floor records, the replay published "
                f"{result.events_published - 1}: the twin did not replay the same day"
            )
        floor = raw_floor(bootstrap, records)
        out.update(
            raw_wall_s=round(floor["wall_s"], 2),
            raw_events_per_s=round(len(records) / floor["wall_s"], 1),
            raw_produce_s=round(floor["produce_s"], 2),
            raw_consumer_cpu_s=round(floor["consumer_cpu_s"], 2),
            ratio=round(wall / floor["wall_s"], 2),
        )
        if worker_cpu is not None:
            out["worker_cpu_ratio"] = round(worker_cpu / floor["wall_s"], 2)
        if transport:
            faust_floor = raw_floor(bootstrap, records, transport=True)
            out.update(
                transport_wall_s=round(faust_floor["wall_s"], 2),
                transport_consumer_cpu_s=round(faust_floor["consumer_cpu_s"], 2),
                transport_consumer_cpu_us_per_record=round(
                    1e6 * faust_floor["consumer_cpu_s"] / max(len(records), 1), 2
                ),
                transport_ratio=round(faust_floor["wall_s"] / floor["wall_s"], 2),
                transport_cpu_ratio=round(faust_floor["consumer_cpu_s"] / floor["wall_s"], 2),
            )
    out["kpis"] = result.kpis.to_dict() if intervals == scenario.n_intervals else None
    return out


def process_cpu_s(pid: int) -> float | None:
    """:func:`replay.workers.cpu_seconds`, None where there is no procfs (the bench then leaves
    the figure out)."""
    from replay.workers import cpu_seconds

    try:
        return cpu_seconds(pid)
    except OSError:
        return None


def round_trip_ms(result: ReplayResult) -> dict[str, float]:
    """Where the driver's waits for allocations went, ms per interval (mean, and median/p90 of
    the whole wait): ``worker`` from the interval delivered to the broker to the allocation
    sent (the worker working off its backlog of the interval's records, closing, deciding),
    ``delivery`` from sent to read by the driver (:class:`replay.loop.ReplayResult`)."""
    waits = sorted(1000.0 * w for w in result.waits)
    if not waits:
        return {}
    out = {
        "mean": round(statistics.fmean(waits), 1),
        "p50": round(statistics.median(waits), 1),
        "p90": round(waits[int(0.9 * (len(waits) - 1))], 1),
    }
    if result.worker_waits:
        out["worker_mean"] = round(1000.0 * statistics.fmean(result.worker_waits), 1)
        out["delivery_mean"] = round(1000.0 * statistics.fmean(result.delivery_waits), 1)
    return out


def day_records(
    demand: DayDemand, seed: int, allocations: list[AllocationDecided]
) -> list[tuple[str, bytes, bytes]]:
    """``(topic, key, value)`` of every floor and interval record the replay published (all but
    its ``day_started``), in publishing order: the twin run again with the same seed under the
    allocations the replay received, encoded as the replay encodes them."""
    from contracts.topics import message_key
    from replay.loop import FloorRecords, owner_of
    from twin.sim import SortationTwin

    scenario = demand.scenario
    key = message_key(scenario.site_id)
    records: list[tuple[str, bytes, bytes]] = []

    def send(kind: str, topic: str, moment: datetime, value: bytes) -> None:
        records.append((topic, key, value))

    twin = SortationTwin(scenario, demand, seed=seed, emit=FloorRecords(send))
    for allocation in allocations:
        if twin.done:
            break
        twin.run_interval(owner_of(scenario, allocation))
    return records


def raw_floor(
    bootstrap: str | KafkaClientConfig,
    records: list[tuple[str, bytes, bytes]],
    *,
    transport: bool = False,
) -> dict[str, float]:
    """Produce ``records`` and consume + decode them in another process, timed (module
    docstring): ``wall_s`` from the first produce to the last decode, ``produce_s`` until the
    producer's flush returned, ``consumer_cpu_s`` the consumer process's CPU time from when it
    was ready. The consumer is a plain librdkafka one, or with ``transport`` the worker's own
    faust app and batch consumer (:mod:`replay.transport_floor`)."""
    from replay.transport_floor import consume as transport_consume
    from stream.admin import ensure_topics
    from stream.clients import as_client
    from stream.inputs import EVENT_TOPICS

    client = as_client(bootstrap)
    suffix = f".raw-floor-{uuid.uuid4().hex[:8]}"
    specs = {spec.name: replace(spec, name=spec.name + suffix) for spec in EVENT_TOPICS}
    used = sorted({topic for topic, _, _ in records})
    ensure_topics(client, [specs[name] for name in used])
    context = multiprocessing.get_context("spawn")  # a fresh interpreter, as a worker is
    parent, child = context.Pipe()
    consumer = context.Process(
        target=transport_consume if transport else _consume,
        args=(client, [(name, specs[name]) for name in used], len(records), child),
        daemon=True,
    )
    consumer.start()
    try:
        if not parent.poll(120.0):
            raise RuntimeError("the raw floor's consumer did not start in 120 s")
        started = parent.recv()
        if started != "ready":
            raise RuntimeError(f"the raw floor's consumer did not start: {started}")
        result = _produce(client, specs, records)
        if not parent.poll(RAW_TIMEOUT_S):
            raise RuntimeError(f"the raw floor's consumer did not finish in {RAW_TIMEOUT_S:g} s")
        done: dict[str, float] = parent.recv()
        if "error" in done:
            raise RuntimeError(f"raw floor: {done['error']}")
    finally:
        if transport:  # a faust worker runs until stopped
            consumer.terminate()
        consumer.join(10.0)
        if consumer.is_alive():
            consumer.kill()
        _delete_topics(client, [specs[name].name for name in used])
    return {
        "wall_s": done["finished"] - result["started"],
        "produce_s": result["flushed"] - result["started"],
        "consumer_cpu_s": done["cpu_s"],
    }


def _produce(
    client: KafkaClientConfig,
    specs: dict[str, TopicSpec],
    records: list[tuple[str, bytes, bytes]],
) -> dict[str, float]:
    from replay.publisher import KafkaPublisher

    publisher = KafkaPublisher(client)
    names = {name: spec.name for name, spec in specs.items()}
    started = time.monotonic()
    for topic, key, value in records:
        publisher.produce(names[topic], key, value)
    publisher.flush()
    return {"started": started, "flushed": time.monotonic()}


def _consume(
    client: KafkaClientConfig,
    topics: list[tuple[str, TopicSpec]],
    expected: int,
    pipe: Connection,
) -> None:  # pragma: no cover - runs in the raw floor's child process
    """A plain consumer: assigned every partition of ``topics`` from the beginning, decoding
    each record's value against its original topic's spec; reports when the last is decoded.
    ``time.monotonic`` is the system's monotonic clock, the same in both processes."""
    try:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from contracts.codec import decode

        consumer = Consumer(
            client.confluent_config(
                {
                    "group.id": f"chuteflow-raw-floor-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                    # librdkafka (>= 2.0) stops fetching a partition for fetch.queue.backoff.ms
                    # (1 s) whenever its local queue holds queued.min.messages (100k): a
                    # consumer that reads a day already on the broker then stalls ~0.8 s every
                    # ~90k records (issue 22: 9.2 s for the heaviest large day, 5.5 s without).
                    # A floor is measured without that throttle, and with a short fetch wait
                    # so the first records are not held by an empty topic's long poll.
                    "fetch.queue.backoff.ms": 0,
                    "fetch.wait.max.ms": 5,
                }
            )
        )
        consumer.assign(
            [
                TopicPartition(spec.name, p, OFFSET_BEGINNING)
                for _, spec in topics
                for p in range(spec.partitions)
            ]
        )
        by_name = {spec.name: _original_spec(name) for name, spec in topics}
        pipe.send("ready")
        cpu0 = os.times()
        seen = 0
        while seen < expected:
            for message in consumer.consume(num_messages=10_000, timeout=1.0):
                if message.error() is not None:
                    continue
                decode(message.value() or b"", by_name[str(message.topic())])
                seen += 1
        finished = time.monotonic()
        cpu1 = os.times()
        consumer.close()
        cpu = cpu1.user - cpu0.user + cpu1.system - cpu0.system
        pipe.send({"finished": finished, "cpu_s": cpu})
    except Exception as error:
        pipe.send({"error": f"{type(error).__name__}: {error}"})


def _original_spec(name: str) -> TopicSpec:
    from stream.inputs import BY_NAME

    return BY_NAME[name]


def _delete_topics(client: KafkaClientConfig, names: list[str]) -> None:
    from stream.clients import connect_admin

    admin, _ = connect_admin(client)
    for future in admin.delete_topics(names, operation_timeout=30).values():
        # a throw-away topic left behind only costs disk; the figures are already taken
        with contextlib.suppress(Exception):
            future.result()


__all__ = ["bench_replay", "day_records", "process_cpu_s", "raw_floor", "round_trip_ms"]
