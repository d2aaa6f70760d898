"""The shadow twin's gauges on the ops page's ``/metrics``: what ``ChuteflowShadowFarWorse``
(deploy/prometheus/alerts.yml) compares.

Why here and not in the worker: the worker runs no twin (``stream`` and ``twin`` are peers,
and a decision must not wait on a simulation), while the page already follows every topic
into memory. Each site's current day is kept by :class:`ops.twin_days.TwinDays`; a background
thread runs the shadow report's own comparison on it (``rollout.shadow.compare``: every
served and shadow policy re-runs the day on the twin with the floor's arrivals and outages,
averaged over the same container-fill seeds), so the gauges are the numbers ``chuteflow
shadow report`` prints for the day so far.

Cost, and how it is bounded: one comparison re-runs the whole day so far (the twin has no
cheaper incremental form: each policy's trajectory depends on all its earlier decisions).
A site is compared again only when an interval closed since its last comparison, and at most
once every ``every_s`` seconds (default :data:`EVERY_S`), one site at a time, in this thread:
the page never waits on it, and a scrape only reads the last results. Measured: a full
small-site day (proportional and a shadow, 5 seeds) 0.4-0.9 s; a full large-site day
(161k first inductions, proportional and the shipped DRMARL, 5 seeds) 5.4 s of twin runs plus
about 2 s to decode the day's inductions, so with 5-minute intervals the thread keeps a few
percent of one core busy at the end of the day.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from floor.scenario import Scenario
from ops.twin_days import TwinDays
from rollout.shadow import SHADOW_SEEDS, Fetch, compare

EVERY_S = 60.0
"""Least seconds between two comparisons of one site (``ops serve --shadow-twin-every``)."""
ROLE_OF_ROW = {"served": "served", "shadow": "shadow"}


@dataclass(frozen=True)
class TwinRow:
    """One policy's counterfactual day so far, as the gauges export it."""

    role: str
    policy: str
    version: str
    inducted: int
    recirculation_ratio: float


@dataclass(frozen=True)
class SiteResult:
    day_key: str
    closed_through: int
    rows: tuple[TwinRow, ...]
    seconds: float
    finished: float


def twin_rows(scenario: Scenario, days: TwinDays, fetch: Fetch, seeds: int) -> SiteResult | None:
    """Compare the site's current day as the shadow report does (None: no decision yet)."""
    started = time.perf_counter()
    day = days.site_day(scenario.site_id)
    if day is None or day.closed_through < 0 or not day.allocations:
        return None
    result = compare(scenario, day, fetch, seeds=seeds)
    rows = []
    for row in result.rows:
        if row.source != "twin":
            continue
        label, _, role = row.label.rpartition(" (")
        run = result.runs[label]
        rows.append(
            TwinRow(
                role=ROLE_OF_ROW[role.split(",")[0]],
                policy=run.policy_name,
                version=run.policy_version,
                inducted=row.inducted,
                recirculation_ratio=row.recirculation_rate,
            )
        )
    return SiteResult(
        day_key=day.day_key,
        closed_through=result.closed_through,
        rows=tuple(rows),
        seconds=time.perf_counter() - started,
        finished=time.time(),
    )


class ShadowTwinMetrics(Collector):
    """The comparing thread and the gauges it feeds, in a registry of their own
    (:attr:`registry`: the page serves it on ``/metrics``)."""

    def __init__(
        self,
        days: TwinDays,
        fetch: Fetch,
        *,
        every_s: float = EVERY_S,
        seeds: int = SHADOW_SEEDS,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.days = days
        self.fetch = fetch
        self.every_s = every_s
        self.seeds = seeds
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.results: dict[str, SiteResult] = {}
        self.failures: dict[str, str] = {}
        self._lock = threading.Lock()  # results and failures: this thread writes, scrapes read
        self._last_try: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ops-shadow-twin", daemon=True)
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def due(self, now: float) -> list[str]:
        """Sites with an interval closed since their last comparison, not compared within
        ``every_s`` seconds."""
        out = []
        for site, (day_key, closed) in self.days.closed().items():
            with self._lock:
                done = self.results.get(site)
            if done is not None and (done.day_key, done.closed_through) == (day_key, closed):
                continue
            if closed < 0 or now - self._last_try.get(site, -1e18) < self.every_s:
                continue
            out.append(site)
        return out

    def run_once(self) -> None:
        """Compare every due site once (the thread's step; tests call it directly)."""
        for site in self.due(time.monotonic()):
            self._last_try[site] = time.monotonic()
            try:
                result = twin_rows(self.days.scenarios[site], self.days, self.fetch, self.seeds)
            except Exception as error:  # a policy missing from the store, a broken artifact
                reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
                with self._lock:
                    known = self.failures.get(site)
                    self.failures[site] = reason
                if known != reason:
                    self.log(f"ops: shadow twin of {site} failed, keeps trying: {reason}")
                continue
            with self._lock:
                self.failures.pop(site, None)
                if result is not None:
                    self.results[site] = result

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.run_once()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["site", "role", "policy", "version"]
        ratio = GaugeMetricFamily(
            "chuteflow_shadow_twin_recirculation_ratio",
            "Recirculations per first induction of each served and shadow policy's "
            "counterfactual twin run over the site's day so far (the shadow report's figure)",
            labels=labels,
        )
        inducted = GaugeMetricFamily(
            "chuteflow_shadow_twin_inducted",
            "First inductions that counterfactual run covers (the floor's, through the last "
            "closed interval)",
            labels=labels,
        )
        through = GaugeMetricFamily(
            "chuteflow_shadow_twin_closed_interval",
            "Last closed interval of the site's day the shadow twin gauges cover",
            labels=["site"],
        )
        seconds = GaugeMetricFamily(
            "chuteflow_shadow_twin_compute_seconds",
            "Wall-clock seconds the site's last shadow twin comparison took",
            labels=["site"],
        )
        failing = GaugeMetricFamily(
            "chuteflow_shadow_twin_failing",
            "1 while the site's last shadow twin comparison failed (the page's log says why)",
            labels=["site"],
        )
        current = {site: key for site, (key, _) in self.days.closed().items()}
        with self._lock:
            results = sorted(self.results.items())
            failures = set(self.failures)
        for site, result in results:
            if current.get(site) != result.day_key:
                continue  # a new day started: its first comparison replaces these
            for row in result.rows:
                key = [site, row.role, row.policy, row.version]
                ratio.add_metric(key, row.recirculation_ratio)
                inducted.add_metric(key, float(row.inducted))
            through.add_metric([site], float(result.closed_through))
            seconds.add_metric([site], result.seconds)
        for site in sorted({site for site, _ in results} | failures):
            failing.add_metric([site], 1.0 if site in failures else 0.0)
        yield from (ratio, inducted, through, seconds, failing)


__all__ = ["EVERY_S", "ShadowTwinMetrics", "SiteResult", "TwinRow", "twin_rows"]
