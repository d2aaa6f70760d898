"""The worker's Prometheus endpoint (``chuteflow worker --metrics-port N``).

Decisions are observed as they happen (:meth:`WorkerMetrics.observe`, the processor's
``on_decision`` hook); everything else is read from the processor and the consumer when
Prometheus scrapes, so the hot path pays nothing for it. The processor itself stays free of
any metrics library.

Exposed (all prefixed ``chuteflow_``): decision latency histogram per site; decisions by solver
status and policy; policy fallbacks; records in; allocations out; dead letters by reason kind;
records skipped as redeliveries; consumer lag per input partition; the day's observed
recirculation rate per site; and the serving policy per site (a gauge of 1 with the policy's
name and version as labels).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stream.processor import DecisionObserved, StreamProcessor

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
"""Seconds; a large-site decision is ~2 ms at p50 (``chuteflow bench decision``)."""

_COUNTERS = (
    ("chuteflow_records_in", "Input records handled", "records"),
    (
        "chuteflow_records_accepted",
        "Input records applied to a site (not dead-lettered)",
        "accepted",
    ),
    ("chuteflow_allocations_out", "Allocations published", "decisions"),
    (
        "chuteflow_redelivered_skipped",
        "Records at or below a site's applied offset (applied before a restart)",
        "redelivered_skipped",
    ),
)
"""Plain counters read from ``StreamProcessor.stats``: (metric, help, stats key)."""

LagSource = Callable[[], Mapping[tuple[str, int], int]]
"""(topic, partition) -> records behind the end of the partition."""


class _ProcessorCollector(Collector):
    """Reads the processor's counters and the consumer's lag at scrape time."""

    def __init__(self, processor: StreamProcessor, lag: LagSource | None) -> None:
        self.processor = processor
        self.lag = lag

    def collect(self) -> Iterable[Metric]:
        p = self.processor
        stats = dict(p.stats)
        for name, help_text, stat in _COUNTERS:
            counter = CounterMetricFamily(name, help_text)
            counter.add_metric([], stats.get(stat, 0))
            yield counter
        dead = CounterMetricFamily(
            "chuteflow_dead_letters", "Dead-lettered records by reason kind", labels=["kind"]
        )
        for kind, n in sorted(dict(p.dead_letters).items()):
            dead.add_metric([kind], n)
        yield dead
        rate = GaugeMetricFamily(
            "chuteflow_recirculation_rate",
            "The open day's recirculations per first induction, as the floor reported them",
            labels=["site"],
        )
        serving = GaugeMetricFamily(
            "chuteflow_serving_policy",
            "1 for the policy serving the site",
            labels=["site", "policy", "version"],
        )
        for site_id, site in sorted(p.sites.items()):
            inducted = site.day_totals.get("first_inductions", 0)
            recirculated = site.day_totals.get("recirculated", 0)
            rate.add_metric([site_id], recirculated / inducted if inducted else 0.0)
            policy = site.serving().policy
            serving.add_metric([site_id, policy.name, policy.version], 1.0)
        yield rate
        yield serving
        if self.lag is not None:
            lag = GaugeMetricFamily(
                "chuteflow_consumer_lag",
                "Records behind the end of each assigned input partition",
                labels=["topic", "partition"],
            )
            for (topic, partition), n in sorted(self.lag().items()):
                lag.add_metric([topic, str(partition)], n)
            yield lag


class WorkerMetrics:
    """Metrics of one worker process, in their own registry (tests make several)."""

    def __init__(self, processor: StreamProcessor, lag: LagSource | None = None) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "chuteflow_decision_latency_seconds",
            "Features, policy, projection, chute map and validation of one decision",
            ["site"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "chuteflow_decisions",
            "Decisions by solver status and policy",
            ["site", "solver_status", "policy"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "chuteflow_policy_fallbacks",
            "Decisions whose policy values were discarded (error, NaN, wrong shape)",
            ["site"],
            registry=self.registry,
        )
        self.registry.register(_ProcessorCollector(processor, lag))

    def observe(self, decision: DecisionObserved) -> None:
        site = decision.site_id
        self.latency.labels(site).observe(decision.total_ms / 1e3)
        policy = f"{decision.policy_name}@{decision.policy_version}"
        self.decisions.labels(site, decision.solver_status, policy).inc()
        if decision.policy_error is not None:
            self.fallbacks.labels(site).inc()

    def serve(self, port: int, addr: str = "0.0.0.0") -> Any:
        """Start the HTTP endpoint in a daemon thread; returns the server."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server


def faust_lag(app: Any, topics: frozenset[str]) -> LagSource:
    """Lag of the app's assigned input partitions: end offset minus the next offset to read."""

    def lag() -> dict[tuple[str, int], int]:
        consumer = app.consumer
        result: dict[tuple[str, int], int] = {}
        for tp in consumer.assignment():
            if tp.topic not in topics:
                continue
            try:
                high = int(consumer.highwater(tp) or 0)
            except Exception:  # not fetched yet: no figure rather than a wrong one
                continue
            read = consumer._read_offset.get(tp)
            result[(tp.topic, tp.partition)] = max(0, high - (read + 1 if read is not None else 0))
        return result

    return lag


__all__ = ["LATENCY_BUCKETS", "WorkerMetrics", "faust_lag"]
