"""``chuteflow bench fleet``: N sites' days at once through one broker and W workers.

What it measures (the issue's fleet targets: >= 99.9 % of allocations before their deadline at
>= 10x real time, hand-over <= 10 s, KPIs equal, none missing or duplicated):

- **decision latency** per site size: the allocation record's Kafka timestamp minus the moment
  the record that asked for it was produced (``day_started`` for interval 0, else the previous
  interval's close); both stamped by this host's clock.
- **on time**: the share of allocations published by their deadline
  (:func:`replay.fleet.deadlines`: ``--deadline-seconds`` floor seconds after their interval's
  start on the shared wall clock, i.e. that many / pace wall seconds; the first allocation by
  the shift start, the days open that long before it).
- **consumer lag** over time: every second, the sum over workers of their
  ``chuteflow_consumer_lag_records`` gauge (``/metrics``, :mod:`stream.metrics`).
- **CPU seconds per site-interval**: the workers' CPU time (``/proc/PID/stat``) over the run
  divided by the site-intervals decided; the driver's own CPU beside it.
- **memory per site**: worker RSS (``/proc/PID/status``) against a worker serving one site with
  no day open.
- with ``--kill-one``: one worker SIGKILLed just before a boundary where every site closes an
  interval (no successor with its id: the others take its partitions after
  ``--session-timeout-seconds``), and the **hand-over**: the kill to the first allocation by
  another worker for a site it owned (all of them: to the last such site's).
- **per boundary**: latency and misses by interval index (``boundaries``), so a run says
  whether its misses are one boundary (the days' opening, a stall) or all of them.
- the **audit**: the allocation topic read back, by site, day and interval: intervals with no
  allocation, intervals with records of different content, repeats; and every site's KPIs and
  allocations against its in-process run (:func:`replay.fleet.reference_run`).

The driver (this process: N twins standing in for N floors, their publisher and allocation
consumer) runs at ``--driver-nice`` (default 10) for the replay: on a real network the floors
are not on the workers' cores, and at an aligned boundary the driver's burst (every site's next
interval simulated as its allocation arrives) would otherwise take the CPU the workers decide
with. The broker and the workers keep nice 0. The driver's own lateness is reported
(``late_close_*``): a close that goes out late counts against the deadline all the same, since
deadlines are set by the shared wall clock, not by when the close went out.

**Warm-up.** Before the measured replay, :data:`WARMUP_SITES` sites of their own (each size
alike, ids ``warmup-*``, in the same catalog and served by the same workers) replay
:data:`WARMUP_HOURS` shift hours at full speed. A floor's broker and workers have been running
for days when its shift starts; a broker started for the bench has not. Measured here without
it (``--no-warmup``): the fresh broker's JIT and first requests took ~1 s of the first
allocations' 1 s budget, so every miss of the run fell on interval 0 (the days' opening) and
none on a later boundary. The warm-up touches none of the measured sites: each still pays its
own first day (its plan, its groups' caches, its first snapshot) inside the measurement. Its
wall time is reported (``warmup_s``); CPU, lag, memory and the audit count from after it.

Sites reach the workers through the site catalog (:func:`provision_workers`: every site is
published with ``chuteflow site add``'s code, the workers run ``--catalog``); the consumer
group decides who serves what.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.topics import ALLOCATIONS, DECISIONS_AUDIT, PARTITIONS
from floor.errors import ChuteflowError
from replay.fleet import (
    SIZES,
    Decided,
    FleetResult,
    FleetSite,
    make_fleet,
    reference_run,
    replay_fleet,
    site_partitions,
)
from replay.loop import allocation_of
from replay.workers import cpu_seconds, start_worker, stop_worker
from stream.clients import KafkaClientConfig, as_client
from stream.inputs import INPUT_TOPICS


class FleetBenchError(ChuteflowError):
    """The fleet could not be set up or replayed; one line."""


@dataclass(frozen=True)
class FleetSettings:
    """What ``chuteflow bench fleet`` takes; every field is a flag of the same name."""

    sites: int = 100
    """Sites, dealt small, medium, large in turn."""
    workers: int = 3
    """``chuteflow worker`` processes in one consumer group."""
    pace: float | None = 10.0
    """Floor seconds per wall second (None: ``--pace max``, as fast as the loops go)."""
    hours: float = 1.0
    """Hours of each shift replayed (1 h at 10x: 6 minutes of wall time)."""
    deadline_seconds: float = 10.0
    """Floor seconds after its interval starts an allocation is due by."""
    kill_one: bool = False
    """SIGKILL one worker just before a boundary where every site closes an interval."""
    seed: int = 0
    """Site i replays seed ``seed + i``."""
    policy: str = "proportional"
    session_timeout_seconds: float = 6.0
    """The workers' ``--session-timeout-seconds`` (Kafka's minimum is 6)."""
    driver_nice: int = 10
    """Niceness the driver's threads take for the replay (module doc); 0 keeps the shell's."""
    warmup: bool = True
    """Replay :data:`WARMUP_SITES` other sites first (module doc); False: measure from cold."""


WARMUP_SITES = 6
"""Sites of the warm-up replay (module doc): two of each size."""
WARMUP_HOURS = 4.0
"""Shift hours each warm-up site replays, at full speed (10-12 s here: a shorter warm-up left
the broker's JIT compiling through the measured days' opening)."""


@dataclass
class FleetWorker:
    """One worker process of the fleet."""

    process: subprocess.Popen[bytes]
    workdir: Path
    app_id: str
    metrics_port: int

    @property
    def ready_file(self) -> Path:
        return self.workdir / f"{self.app_id}.ready"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.app_id}.log"

    def partitions(self) -> set[int]:
        """Input partitions it owns after its latest rebalance (its ready file)."""
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            body = json.loads(self.ready_file.read_text())
            return set(body["assigned"][INPUT_TOPICS[0].name])
        return set()


def provision_workers(
    bootstrap: str | KafkaClientConfig,
    sites: Sequence[FleetSite],
    workdir: Path,
    *,
    n_workers: int,
    app_id: str,
    policy: str = "proportional",
    session_timeout_s: float = 6.0,
) -> list[FleetWorker]:
    """Publish every site to the site catalog, then start ``n_workers`` catalog workers of
    group ``app_id`` (``chuteflow worker --catalog``, no ``--scenario``): the one place that
    decides how workers learn their sites. Every worker builds every catalog site; the group's
    partition assignment decides who serves which.
    """
    from localkafka import free_port

    publish_fleet(bootstrap, sites, policy)
    ports = [free_port() for _ in range(n_workers)]

    def one(i: int) -> FleetWorker:
        where = workdir / f"worker{i}"
        extra = [
            "--catalog",
            "--session-timeout-seconds",
            f"{session_timeout_s:g}",
            "--metrics-port",
            str(ports[i]),
        ]
        process = start_worker(
            bootstrap, [], where, app_id=app_id, policy=policy, timeout_s=300, extra=extra
        )
        return FleetWorker(process, where, app_id, ports[i])

    started: list[FleetWorker] = []
    errors: list[BaseException] = []
    with ThreadPoolExecutor(n_workers) as pool:
        for future in [pool.submit(one, i) for i in range(n_workers)]:
            try:
                started.append(future.result())
            except BaseException as error:  # the others are stopped below
                errors.append(error)
    if errors:
        for worker in started:
            stop_worker(worker.process)
        raise errors[0]
    return started


def publish_fleet(
    bootstrap: str | KafkaClientConfig, sites: Sequence[FleetSite], policy: str
) -> None:
    """Every site as a site catalog entry (``chuteflow site add`` does the same one site at a
    time): its site file's text and its groups (the medium layout's are fitted at run time,
    so an entry carries them; the built-in layouts' too, for one rule)."""
    from datetime import UTC, datetime

    from contracts.control import PolicyRef
    from contracts.sites import make_entry
    from floor.daytypes import site_groups_path
    from stream.site_catalog import publish_sites, read_catalog

    try:
        ref = PolicyRef(name=policy)
    except ValueError:
        raise FleetBenchError(
            f"--policy {policy}: a fleet of mixed layouts is served by a built-in policy "
            "(static, proportional); a learned one fits one layout"
        ) from None
    current = read_catalog(as_client(bootstrap)).entries
    now = datetime.now(UTC)
    entries = [
        make_entry(
            site.site_id,
            site.scenario_file.read_text(),
            revision=current[site.site_id].revision + 1 if site.site_id in current else 1,
            added_at=now,
            groups=site_groups_path(site.scenario).read_bytes(),
            policy=ref,
            added_by="bench fleet",
        )
        for site in sites
    ]
    publish_sites(bootstrap, entries, timeout_s=60.0)


def wait_settled(workers: Sequence[FleetWorker], timeout_s: float = 120.0) -> None:
    """Until the workers' ready files show disjoint input partitions covering all of them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        owned = [worker.partitions() for worker in workers]
        union = set().union(*owned)
        disjoint = sum(len(p) for p in owned) == len(union)
        complete = disjoint and union == set(range(PARTITIONS))
        if complete and (all(owned) or len(workers) > PARTITIONS):
            return
        time.sleep(0.2)
    raise FleetBenchError(
        f"the group did not settle within {timeout_s:g} s: "
        f"{[sorted(w.partitions()) for w in workers]}"
    )


def wait_committed(bootstrap: str | KafkaClientConfig, group_id: str, timeout_s: float) -> None:
    """Until the group has committed an offset on every input partition: a worker that takes
    over a dead one's partitions then resumes from the commit, not from 'latest'."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(as_client(bootstrap).confluent_config({"group.id": group_id}))
    partitions = [
        TopicPartition(spec.name, p) for spec in INPUT_TOPICS for p in range(spec.partitions)
    ]
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if all(tp.offset >= 0 for tp in consumer.committed(partitions, timeout=10)):
                return
            time.sleep(0.3)
    finally:
        consumer.close()
    raise FleetBenchError(f"group {group_id} committed no offsets within {timeout_s:g} s")


# ---------------------------------------------------------------- process figures


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def scrape_lag(port: int, timeout_s: float = 0.5) -> float | None:
    """Records behind over a worker's assigned input partitions, from its ``/metrics``."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as r:
            text = r.read().decode()
    except OSError:
        return None
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("chuteflow_consumer_lag_records{")
    )


@dataclass
class LagSampler:
    """Samples the workers' summed consumer lag once a second on a thread (HTTP only)."""

    workers: Sequence[FleetWorker]
    samples: list[tuple[float, float]] = field(default_factory=list)
    """(unix wall time, records behind summed over the workers that answered)."""
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.wait(1.0):
            alive = [w for w in self.workers if w.process.poll() is None]
            lags = [scrape_lag(w.metrics_port) for w in alive]
            self.samples.append((time.time(), sum(x for x in lags if x is not None)))

    @contextlib.contextmanager
    def running(self) -> Iterator[LagSampler]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(5)


def idle_worker_rss(bootstrap: str | KafkaClientConfig, workdir: Path) -> int:
    """RSS of a worker serving one built-in site with no day open: the fixed cost of a
    worker process, subtracted before memory is divided by sites."""
    process = start_worker(bootstrap, ["small"], workdir, app_id=f"fleet-idle-{_tag()}")
    try:
        time.sleep(2.0)
        return rss_bytes(process.pid)
    finally:
        stop_worker(process)


# ---------------------------------------------------------------- figures


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 1)


def audit_topic(
    bootstrap: str | KafkaClientConfig,
    result: FleetResult,
    sites: Sequence[FleetSite],
    since_ms: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The allocation topic read back (from ``since_ms``), by site, day and interval; and the
    audit records (worker, trigger, fallback) of this run's decisions."""
    from stream.topic_reader import read_to_end

    days = {site.site_id: site.day for site in result.sites}
    records = read_to_end(
        bootstrap, [ALLOCATIONS.name, DECISIONS_AUDIT.name], since_ms=since_ms, timeout_s=60
    )
    by_interval: dict[tuple[str, int], list[tuple[str, str]]] = {}
    audits: list[dict[str, Any]] = []
    for record in records:
        if record.topic == DECISIONS_AUDIT.name:
            body = json.loads(record.value or b"{}")
            site_id = body.get("site_id")
            if site_id in days and f"/{days[site_id]}/" in str(body.get("decision_id", "")):
                audits.append({**body, "timestamp": record.timestamp_ms / 1e3})
            continue
        event = allocation_of(record.value or b"")
        if event is None or event.site_id not in days:
            continue
        if f"/{days[event.site_id]}/" not in event.decision_id:
            continue
        by_interval.setdefault((event.site_id, event.interval_index), []).append(
            (event.decision_id, event.model_dump_json())
        )
    missing, conflicting, repeated = [], [], 0
    for site in sites:
        last = site.intervals if site.intervals < site.scenario.n_intervals else site.intervals - 1
        for k in range(last + 1):
            got = by_interval.get((site.site_id, k), [])
            if not got:
                missing.append(f"{site.site_id}/{k}")
            elif len(set(got)) > 1:
                conflicting.append(f"{site.site_id}/{k}")
            repeated += max(0, len(got) - 1)
    summary = {
        "site_intervals_expected": sum(
            s.intervals + (s.intervals < s.scenario.n_intervals) for s in sites
        ),
        "site_intervals_on_topic": len(by_interval),
        "missing": missing,
        "decided_twice_differently": conflicting,
        "records_repeated": repeated,
        "fallbacks": sum(1 for a in audits if a.get("fallback_reason")),
    }
    return summary, audits


def compare_references(
    sites: Sequence[FleetSite], result: FleetResult, policy: str
) -> dict[str, Any]:
    """Every site's replayed KPIs and allocations against its in-process run."""
    kpi_diff: dict[str, dict[str, Any]] = {}
    allocations_differ: list[str] = []
    for site, replayed in zip(sites, result.sites, strict=True):
        reference = reference_run(site, replayed.day, policy)
        ours, theirs = replayed.kpis.to_dict(), reference.kpis.to_dict()
        if ours != theirs:
            kpi_diff[site.site_id] = {
                k: (theirs[k], ours.get(k)) for k in theirs if theirs[k] != ours.get(k)
            }
        expected = [d.event.chute_map for d in reference.decisions]
        if [a.chute_map for a in replayed.allocations] != expected:
            allocations_differ.append(site.site_id)
    return {
        "kpis_equal": not kpi_diff,
        "sites_with_kpis_differing": sorted(kpi_diff),
        "kpi_differences": dict(list(kpi_diff.items())[:3]),
        "allocations_equal": not allocations_differ,
        "sites_with_allocations_differing": allocations_differ,
    }


def kill_moment(sites: Sequence[FleetSite], pace: float | None) -> float:
    """Floor seconds after the shift start to kill a worker: just before the boundary where
    every site closes an interval nearest mid-replay (0.5 s of wall time before it when
    paced), else the nearest boundary of the busiest sites."""
    hours = max(site.intervals * site.scenario.interval_minutes for site in sites) * 60.0
    common = max(site.scenario.interval_minutes for site in sites) * 60.0
    inside = [b * common for b in range(1, int(hours // common) + 1) if b * common < hours]
    if not inside:
        step = min(site.scenario.interval_minutes for site in sites) * 60.0
        inside = [b * step for b in range(1, int(hours // step) + 1) if b * step < hours]
    if not inside:
        raise FleetBenchError("--kill-one: replay at least two intervals of some site (--hours)")
    boundary = min(inside, key=lambda b: abs(b - hours / 2))
    return boundary - (0.5 * pace if pace is not None else 0.0)


@contextlib.contextmanager
def _niceness(increment: int) -> Iterator[None]:
    """This thread, and the threads it starts meanwhile (Linux niceness is per thread; the
    replay's librdkafka threads start inside), ``increment`` nicer; restored after when the
    process may (root), else left: the rest of the bench is the audit, not timed."""
    if increment <= 0:
        yield
        return
    before = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, min(19, before + increment))
    try:
        yield
    finally:
        with contextlib.suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, 0, before)


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def bench_fleet(
    settings: FleetSettings,
    bootstrap: str | KafkaClientConfig,
    workdir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Set up ``settings.sites`` sites and ``settings.workers`` workers, replay, measure."""
    from stream.admin import ensure_topics

    say = progress or (lambda text: None)
    s = settings
    if s.sites < 1 or s.workers < 1 or s.hours <= 0 or s.deadline_seconds < 0:
        raise FleetBenchError("sites, workers and hours must be > 0, deadline-seconds >= 0")
    if s.pace is not None and s.pace <= 0:
        raise FleetBenchError("--pace must be > 0 or max")
    with contextlib.ExitStack() as stack:
        root = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fleet-")))
        ensure_topics(bootstrap)
        say(f"writing {s.sites} site files")
        sites = make_fleet(s.sites, root / "sites", hours=s.hours, seed=s.seed)
        warm = (
            # beside the measured sites' files: the medium layout's groups are fitted once
            make_fleet(
                WARMUP_SITES, root / "sites", hours=WARMUP_HOURS, seed=s.seed, prefix="warmup"
            )
            if s.warmup
            else []
        )
        say("measuring an idle worker")
        idle_rss = idle_worker_rss(bootstrap, root / "idle")
        app_id = f"fleet-{_tag()}"
        say(f"starting {s.workers} workers with {s.sites} sites each")
        t_start = time.monotonic()
        workers = provision_workers(
            bootstrap,
            [*sites, *warm],
            root,
            n_workers=s.workers,
            app_id=app_id,
            policy=s.policy,
            session_timeout_s=s.session_timeout_seconds,
        )
        try:
            wait_settled(workers)
            wait_committed(bootstrap, app_id, timeout_s=60)
            startup_s = time.monotonic() - t_start
            loaded_rss = {w.process.pid: rss_bytes(w.process.pid) for w in workers}
            warmup_s = 0.0
            if warm:
                say(
                    f"warming up: {len(warm)} other sites, {WARMUP_HOURS:g} h of their shifts "
                    "at full speed"
                )
                t_warm = time.monotonic()
                replay_fleet(warm, bootstrap, pace=None, allocation_timeout_s=120.0)
                warmup_s = time.monotonic() - t_warm
            cpu_before = {w.process.pid: cpu_seconds(w.process.pid) for w in workers}
            cpu_at_kill: dict[int, float] = {}
            kill: dict[str, Any] = {}

            def kill_one() -> None:
                # the worker serving the most sites (each worker owns whole partitions)
                where = site_partitions(sites)
                victim = max(
                    workers, key=lambda w: sum(p in w.partitions() for p in where.values())
                )
                kill["partitions"] = sorted(victim.partitions())
                kill["pid"] = victim.process.pid
                cpu_at_kill[victim.process.pid] = cpu_seconds(victim.process.pid)
                kill["at"] = time.time()
                os.kill(victim.process.pid, signal.SIGKILL)
                victim.process.wait(10)

            at = [(kill_moment(sites, s.pace), kill_one)] if s.kill_one else []
            since_ms = int(time.time() * 1e3) - 1000
            driver_cpu = cpu_seconds(os.getpid())
            say(f"replaying {s.hours:g} h of {s.sites} shifts at pace {s.pace or 'max'}")
            stack.enter_context(_niceness(s.driver_nice))
            with LagSampler(workers).running() as lag:
                result = replay_fleet(
                    sites,
                    bootstrap,
                    pace=s.pace,
                    grace_s=s.deadline_seconds,
                    allocation_timeout_s=max(120.0, 10 * s.session_timeout_seconds),
                    at=at,
                )
            driver_cpu = cpu_seconds(os.getpid()) - driver_cpu
            # A KafkaPublisher holds itself through its delivery callback: collect it now, while
            # the broker is up, not at exit (where librdkafka logs a page of refused connects).
            gc.collect()
            cpu_after = {
                w.process.pid: cpu_at_kill.get(w.process.pid)
                or (cpu_seconds(w.process.pid) if w.process.poll() is None else 0.0)
                for w in workers
            }
            end_rss = {
                w.process.pid: rss_bytes(w.process.pid) for w in workers if w.process.poll() is None
            }
            load = os.getloadavg()
            say("auditing the allocation topic and the in-process runs")
            audit, audits = audit_topic(bootstrap, result, sites, since_ms)
        finally:
            for worker in workers:
                stop_worker(worker.process)
        reference = compare_references(sites, result, s.policy)
    worker_cpu = sum(cpu_after[pid] - cpu_before[pid] for pid in cpu_before)
    return _report(
        s,
        sites,
        result,
        audit=audit,
        audits=audits,
        reference=reference,
        lag=lag.samples,
        worker_cpu=worker_cpu,
        driver_cpu=driver_cpu,
        idle_rss=idle_rss,
        loaded_rss=loaded_rss,
        end_rss=end_rss,
        kill=kill,
        startup_s=startup_s,
        load=load,
        warmup_s=warmup_s,
        served=len(sites) + len(warm),
    )


def _report(
    s: FleetSettings,
    sites: Sequence[FleetSite],
    result: FleetResult,
    *,
    audit: dict[str, Any],
    audits: list[dict[str, Any]],
    reference: dict[str, Any],
    lag: list[tuple[float, float]],
    worker_cpu: float,
    driver_cpu: float,
    idle_rss: int,
    loaded_rss: dict[int, int],
    end_rss: dict[int, int],
    kill: dict[str, Any],
    startup_s: float,
    load: tuple[float, float, float],
    warmup_s: float,
    served: int,
) -> dict[str, Any]:
    decided = [d for site in result.sites for d in site.decided]
    size_of = {site.site_id: site.size for site in result.sites}
    latency: dict[str, dict[str, Any]] = {}
    for size in SIZES:
        values = [d.latency_s for d in decided if size_of[d.site_id] == size]
        if values:
            latency[size] = {
                "decisions": len(values),
                "p50_ms": _ms(percentile(values, 0.5)),
                "p99_ms": _ms(percentile(values, 0.99)),
                "max_ms": _ms(max(values)),
            }
    timed = [d for d in decided if d.due_at is not None]
    missed = [d for d in timed if d.published_at > d.due_at]  # type: ignore[operator]
    n_decided = len(decided)
    mb = 1024 * 1024
    loaded = sum(loaded_rss.values()) / max(1, len(loaded_rss))
    shift = result.shift_start
    lag_values = [value for _, value in lag]
    out: dict[str, Any] = {
        "sites": s.sites,
        "sizes": {
            size: sum(1 for x in sites if x.size == size) for size in ("small", "medium", "large")
        },
        "workers": s.workers,
        "pace": s.pace or "max",
        "hours": s.hours,
        "intervals_per_site": {
            size: next((x.intervals for x in sites if x.size == size), 0) for size in SIZES
        },
        "deadline_floor_s": s.deadline_seconds,
        "deadline_wall_s": None if s.pace is None else round(s.deadline_seconds / s.pace, 3),
        "wall_s": round(result.wall_seconds, 1),
        "worker_startup_s": round(startup_s, 1),
        "warmup_sites": served - s.sites,
        "warmup_s": round(warmup_s, 1),
        "events_published": result.events_published,
        "events_per_s": round(result.events_published / max(result.wall_seconds, 1e-9), 1),
        "site_intervals_decided": n_decided,
        "latency": latency,
        "on_time_share": None if not timed else round(1 - len(missed) / len(timed), 5),
        "deadline_misses": len(missed),
        "late_close_p99_s": _round(percentile(result.late_closes, 0.99), 3),
        "late_close_max_s": _round(max(result.late_closes, default=None), 3),
        "lag_records_max": max(lag_values, default=None),
        "lag_records_p99": _round(percentile(lag_values, 0.99), 0),
        "lag_records_mean": _round(sum(lag_values) / len(lag_values), 0) if lag_values else None,
        "lag_timeline": [(round(t - shift, 1), value) for t, value in lag],
        "worker_cpu_s": round(worker_cpu, 1),
        "worker_cpu_ms_per_site_interval": round(1e3 * worker_cpu / max(1, n_decided), 2),
        "site_intervals_per_worker_core_s": round(n_decided / max(worker_cpu, 1e-9), 1),
        "worker_cores_used": round(worker_cpu / max(result.wall_seconds, 1e-9), 2),
        "driver_cpu_s": round(driver_cpu, 1),
        "driver_nice": s.driver_nice,
        "idle_worker_rss_mb": round(idle_rss / mb, 1),
        "worker_rss_sites_loaded_mb": round(loaded / mb, 1),
        "worker_rss_end_mb": [round(v / mb, 1) for v in end_rss.values()],
        # every site the workers were given, the warm-up's included
        "rss_per_site_loaded_mb": round((loaded - idle_rss) / mb / max(1, served - 1), 2),
        "rss_per_site_mb": round(sum(v - idle_rss for v in end_rss.values()) / mb / served, 2),
        "load_avg_1m": round(load[0], 2),
        "cores": os.cpu_count(),
        "audit": audit,
        **reference,
    }
    out["boundaries"] = _boundaries(decided, missed)
    if kill:
        out["kill"] = _handover(kill, sites, decided, audits, missed)
    out["targets_met"] = _targets(out)
    return out


def _boundaries(decided: Sequence[Decided], missed: Sequence[Decided]) -> list[dict[str, Any]]:
    """Latency and misses per interval index: whether the misses are one bad boundary (a
    commit, a rebalance, a stall) or spread over all of them (a worker short of CPU)."""
    late: dict[int, int] = {}
    for d in missed:
        late[d.interval_index] = late.get(d.interval_index, 0) + 1
    by_index: dict[int, list[float]] = {}
    for d in decided:
        by_index.setdefault(d.interval_index, []).append(d.latency_s)
    return [
        {
            "interval": k,
            "decisions": len(values),
            "p50_ms": _ms(percentile(values, 0.5)),
            "max_ms": _ms(max(values)),
            "misses": late.get(k, 0),
        }
        for k, values in sorted(by_index.items())
    ]


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _handover(
    kill: dict[str, Any],
    sites: Sequence[FleetSite],
    decided: Sequence[Any],
    audits: Sequence[dict[str, Any]],
    missed: Sequence[Any],
) -> dict[str, Any]:
    """Kill -> first (and last site's first) allocation by another worker for a site the
    killed worker owned, from the decisions-audit records (which name the worker)."""
    dead = f"{socket.gethostname()}/{kill['pid']}"
    owned = {
        site
        for site, partition in site_partitions(sites).items()
        if partition in kill["partitions"]
    }
    first: dict[str, float] = {}
    for record in sorted(audits, key=lambda a: a["timestamp"]):
        site = record.get("site_id")
        if site in owned and record.get("worker") != dead and record["timestamp"] >= kill["at"]:
            first.setdefault(site, record["timestamp"])
    return {
        "killed_pid": kill["pid"],
        "partitions": kill["partitions"],
        "sites_owned": len(owned),
        "sites_taken_over": len(first),
        "handover_s": _round(min(first.values()) - kill["at"], 2) if first else None,
        "handover_all_sites_s": _round(max(first.values()) - kill["at"], 2) if first else None,
        "deadline_misses_after_kill": sum(1 for d in missed if d.published_at >= kill["at"]),
        "deadline_misses_on_its_sites": sum(1 for d in missed if d.site_id in owned),
    }


def _targets(out: dict[str, Any]) -> dict[str, bool]:
    audit = out["audit"]
    targets = {
        "kpis_equal": bool(out["kpis_equal"]),
        "none_missing": not audit["missing"],
        "none_decided_twice": not audit["decided_twice_differently"],
    }
    if out["on_time_share"] is not None and isinstance(out["pace"], float | int):
        targets["on_time_99_9_at_10x"] = out["on_time_share"] >= 0.999 and out["pace"] >= 10
    if "kill" in out:
        handover = out["kill"]["handover_s"]
        targets["handover_10s"] = handover is not None and handover <= 10.0
    return targets


def format_fleet(out: dict[str, Any]) -> str:
    """The figures as text lines."""
    lines = [
        f"fleet: {out['sites']} sites {out['sizes']} on {out['workers']} workers, pace "
        f"{out['pace']}, {out['hours']:g} h per shift {out['intervals_per_site']}, "
        f"{out['wall_s']} s wall, {out['events_published']} events ({out['events_per_s']}/s)",
        f"deadline: {out['deadline_floor_s']:g} floor s after the interval start "
        f"({out['deadline_wall_s']} s wall); warm-up {out['warmup_sites']} other sites in "
        f"{out['warmup_s']} s before it",
    ]
    for size, figures in out["latency"].items():
        lines.append(
            f"latency {size:6s}: p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, "
            f"max {figures['max_ms']} ms over {figures['decisions']} decisions"
        )
    share = out["on_time_share"]
    lines += [
        f"on time: {'n/a' if share is None else f'{100 * share:.2f} %'} "
        f"({out['deadline_misses']} of {out['site_intervals_decided']} late); the driver's "
        f"closes were late by p99 {out['late_close_p99_s']} s, max {out['late_close_max_s']} s",
        "per boundary (interval: p50 / max ms, misses): "
        + ", ".join(
            f"{b['interval']}: {b['p50_ms']:.0f} / {b['max_ms']:.0f}, {b['misses']}"
            for b in out["boundaries"]
        ),
        f"consumer lag (records, summed over workers, sampled 1/s): max "
        f"{out['lag_records_max']}, p99 {out['lag_records_p99']}, mean {out['lag_records_mean']}",
        f"worker CPU: {out['worker_cpu_s']} s = {out['worker_cpu_ms_per_site_interval']} ms per "
        f"site-interval ({out['site_intervals_per_worker_core_s']} site-intervals per "
        f"worker-core-second), {out['worker_cores_used']} cores; driver CPU "
        f"{out['driver_cpu_s']} s (at nice {out['driver_nice']})",
        f"memory: idle worker {out['idle_worker_rss_mb']} MB, worker with the catalog read and "
        f"its sites built {out['worker_rss_sites_loaded_mb']} MB "
        f"({out['rss_per_site_loaded_mb']} MB per catalog site: every worker builds every site), "
        f"at the end {out['worker_rss_end_mb']} MB ({out['rss_per_site_mb']} MB per site over "
        "all workers)",
    ]
    if "kill" in out:
        k = out["kill"]
        lines.append(
            f"kill: pid {k['killed_pid']} owned partitions {k['partitions']} "
            f"({k['sites_owned']} sites); hand-over {k['handover_s']} s (all its sites "
            f"{k['handover_all_sites_s']} s); deadline misses after the kill "
            f"{k['deadline_misses_after_kill']} ({k['deadline_misses_on_its_sites']} on its sites)"
        )
    audit = out["audit"]
    lines += [
        f"audit: {audit['site_intervals_on_topic']} of {audit['site_intervals_expected']} "
        f"site-intervals on the topic, missing {len(audit['missing'])}, decided twice "
        f"differently {len(audit['decided_twice_differently'])}, records repeated "
        f"{audit['records_repeated']}, fallbacks {audit['fallbacks']}",
        f"KPIs equal to in-process: {out['kpis_equal']}; allocations equal: "
        f"{out['allocations_equal']}",
        f"machine: {out['cores']} cores, load {out['load_avg_1m']}; targets "
        + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in out["targets_met"].items()),
    ]
    return "\n".join(lines)


__all__ = [
    "FleetBenchError",
    "FleetSettings",
    "FleetWorker",
    "bench_fleet",
    "format_fleet",
    "provision_workers",
]
