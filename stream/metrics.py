"""The worker's Prometheus metrics (``chuteflow worker --metrics-port N``, path ``/metrics``).

Names follow Prometheus' conventions: base units (seconds), counters end in ``_total``, a ratio
ends in ``_ratio`` and has the counters behind it (so ``rate()`` works over any window), the
serving policy is an ``_info`` series of 1, and every per-site series has a ``site`` label
(``unknown`` for a record whose key names no served site: never the key itself, whose values
a hostile producer chooses). The README lists them with meaning and unit.

Decisions are observed as they happen (:meth:`WorkerMetrics.observe`, the processor's
``on_decision`` hook); everything else is read from the processor and the consumer when
Prometheus scrapes, so the hot path pays nothing for it. The processor itself stays free of
any metrics library.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stream.observations import DecisionObserved, error_kind
from stream.processor import StreamProcessor

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
"""Seconds; a large-site decision is ~2 ms at p50 (``chuteflow bench decision``)."""

SPACING_WEIGHT = 0.3
"""Weight of the newest gap in the allocation-spacing EWMA: a few intervals settle it, one
slow interval does not double it."""

LagSource = Callable[[], Mapping[tuple[str, int], int | None]]
"""(topic, partition) -> records behind the end of the partition (None: not fetched yet)."""
ReadySource = Callable[[], bool]


@dataclass
class _LastAllocation:
    at: float
    """Unix wall time the site's last allocation was decided."""
    spacing: float | None = None
    """EWMA of the wall seconds between the site's consecutive allocations."""


class _ProcessorCollector(Collector):
    """Reads the processor's counters, the sites and the consumer's lag at scrape time."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        m = self.metrics
        p = m.processor
        # dict() copies are atomic under the GIL; the event loop keeps adding meanwhile.
        records = CounterMetricFamily(
            "chuteflow_records",
            "Input records consumed (decoded or not; redeliveries skipped are not counted)",
            labels=["site", "topic"],
        )
        for (label, topic), count in sorted(dict(p.records).items()):
            records.add_metric([label, topic], count)
        yield records
        dead = CounterMetricFamily(
            "chuteflow_dead_letters",
            "Input records dead-lettered, by the reason's kind",
            labels=["site", "reason"],
        )
        for (label, kind), count in sorted(dict(p.dead_letters).items()):
            dead.add_metric([label, kind], count)
        yield dead

        sites = sorted(p.sites.items())
        per_site = {
            "allocations": (p.allocations, "Allocations published on the allocation topic"),
            "inducted": (p.inducted, "Packages inducted for the first time (attempt 1)"),
            "recirculated": (p.recirculated, "Packages sent round the loop again"),
            "redelivered_skipped": (
                p.redelivered,
                "Records at or below a site's applied offset (applied before a restart)",
            ),
        }
        for name, (counter, help_text) in per_site.items():
            family = CounterMetricFamily(f"chuteflow_{name}", help_text, labels=["site"])
            counts = dict(counter)
            for site_id, _ in sites:
                family.add_metric([site_id], counts.get(site_id, 0))
            yield family

        ratio = GaugeMetricFamily(
            "chuteflow_recirculation_ratio",
            "The open day's recirculations per first induction, as the floor reported them "
            "(rate(recirculated_total) / rate(inducted_total) gives any window)",
            labels=["site"],
        )
        info = GaugeMetricFamily(
            "chuteflow_serving_policy_info",
            "1 for the policy serving the site's next allocation",
            labels=["site", "policy", "version", "route_revision"],
        )
        revision = GaugeMetricFamily(
            "chuteflow_route_revision",
            "Revision of the site's control-topic route (0: none, the --policy serves)",
            labels=["site"],
        )
        day_open = GaugeMetricFamily(
            "chuteflow_day_open",
            "1 while the site's day is open and more intervals are expected, else 0",
            labels=["site"],
        )
        for site_id, site in sites:
            totals = dict(site.day_totals)
            inducted = totals.get("first_inductions", 0)
            ratio.add_metric(
                [site_id], totals.get("recirculated", 0) / inducted if inducted else 0.0
            )
            policy = site.serving().policy
            rev = site.route_revision
            info.add_metric([site_id, policy.name, policy.version, str(rev)], 1.0)
            revision.add_metric([site_id], rev)
            still = site.day_open and site.tracker.interval_index < site.config.n_intervals
            day_open.add_metric([site_id], 1.0 if still else 0.0)
        yield from (ratio, info, revision, day_open)

        with m.lock:
            last = {label: (a.at, a.spacing) for label, a in m.last.items()}
        stamp = GaugeMetricFamily(
            "chuteflow_last_allocation_timestamp_seconds",
            "Unix time the site's last allocation was decided by this worker",
            labels=["site"],
        )
        age = GaugeMetricFamily(
            "chuteflow_last_allocation_age_seconds",
            "Seconds since the site's last allocation (computed at scrape)",
            labels=["site"],
        )
        spacing = GaugeMetricFamily(
            "chuteflow_allocation_spacing_seconds",
            "EWMA of the wall seconds between the site's consecutive allocations",
            labels=["site"],
        )
        now = m.wall()
        for site_id, (at, gap) in sorted(last.items()):
            stamp.add_metric([site_id], at)
            age.add_metric([site_id], max(0.0, now - at))
            if gap is not None:
                spacing.add_metric([site_id], gap)
        yield from (stamp, age, spacing)

        if m.lag is not None:
            lag = GaugeMetricFamily(
                "chuteflow_consumer_lag_records",
                "Records behind the end of each assigned input partition (best effort)",
                labels=["topic", "partition"],
            )
            for (name, partition), behind in sorted(m.lag().items()):
                if behind is not None:
                    lag.add_metric([name, str(partition)], behind)
            yield lag
        if m.ready is not None:
            ready = GaugeMetricFamily(
                "chuteflow_ready", "1 when /readyz answers 200 (assigned, caught up, loaded)"
            )
            ready.add_metric([], 1.0 if m.ready() else 0.0)
            yield ready


class WorkerMetrics:
    """Metrics of one worker process, in their own registry (tests make several).

    Args:
        processor: whose counters and sites are read at scrape time.
        lag: the consumer's lag per input partition (:func:`faust_lag`); None: not exposed.
        ready: whether the worker is ready (:class:`stream.health.Readiness`); None: not
            exposed.
        wall: unix wall clock (injectable for tests).
    """

    def __init__(
        self,
        processor: StreamProcessor,
        lag: LagSource | None = None,
        ready: ReadySource | None = None,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.processor = processor
        self.lag = lag
        self.ready = ready
        self.wall = wall
        self.lock = threading.Lock()
        self.last: dict[str, _LastAllocation] = {}
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "chuteflow_decision_latency_seconds",
            "Features, policy, projection, chute map and validation of one decision",
            ["site", "role", "policy"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "chuteflow_decisions",
            "Decisions by role (served, shadow), policy, version and solver status",
            ["site", "role", "policy", "version", "solver_status"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "chuteflow_fallbacks",
            "Served decisions whose policy values were discarded (the fallback policy decided, "
            "or the previous allocation was kept), by the error's type",
            ["site", "reason"],
            registry=self.registry,
        )
        self.registry.register(_ProcessorCollector(self))

    def observe(self, decision: DecisionObserved) -> None:
        """One decision (the processor's ``on_decision`` hook)."""
        site = decision.site_id
        self.latency.labels(site, decision.role, decision.policy_name).observe(
            decision.total_ms / 1e3
        )
        self.decisions.labels(
            site,
            decision.role,
            decision.policy_name,
            decision.policy_version,
            decision.solver_status,
        ).inc()
        if decision.role != "served":
            return
        if decision.policy_error is not None:
            self.fallbacks.labels(site, error_kind(decision.policy_error)).inc()
        now = self.wall()
        with self.lock:
            last = self.last.get(site)
            if last is None:
                self.last[site] = _LastAllocation(at=now)
                return
            gap = max(0.0, now - last.at)
            last.spacing = (
                gap
                if last.spacing is None
                else SPACING_WEIGHT * gap + (1 - SPACING_WEIGHT) * last.spacing
            )
            last.at = now


def faust_lag(app: object, topics: frozenset[str]) -> LagSource:
    """Lag of the app's assigned input partitions: end offset minus the next offset to handle.

    The next offset is the one after the last record handed to the worker (faust's read
    offset) or, for a partition nothing has been read from since the assignment, the
    consumer's fetch position (where ``--offset-reset`` or the committed offset put it).
    None for a partition whose end or position the consumer has not learnt yet (no fetch
    answered since the assignment): readiness waits for a figure instead of guessing 0.
    Reads faust's and aiokafka's consumer state (no public API gives both); any surprise
    there gives None rather than a wrong figure.
    """

    def lag() -> dict[tuple[str, int], int | None]:
        consumer = app.consumer  # type: ignore[attr-defined]
        result: dict[tuple[str, int], int | None] = {}
        for tp in consumer.assignment():
            if tp.topic not in topics:
                continue
            result[(tp.topic, tp.partition)] = _partition_lag(consumer, tp)
        return result

    return lag


def _partition_lag(consumer: Any, tp: Any) -> int | None:
    try:
        high = consumer.highwater(tp)
        if high is None:
            return None
        read = consumer._read_offset.get(tp)
        if read is not None:
            return max(0, int(high) - (int(read) + 1))
        aio = consumer._thread._ensure_consumer()
        state = aio._subscription.subscription.assignment.state_value(tp)
        if state is None or not state.has_valid_position:
            return None
        return max(0, int(high) - int(state.position))
    except Exception:  # a rebalance in between, or faust/aiokafka internals moved
        return None


__all__ = ["LATENCY_BUCKETS", "LagSource", "WorkerMetrics", "faust_lag"]
