"""Worker health for the page: each worker's ``/readyz`` and ``/metrics``, scraped every few
seconds (``chuteflow ops serve --worker-metrics URL``, once per worker).

The worker already says everything the page needs on its metrics port (``stream/metrics.py``):
readiness, consumer lag per partition, and per site the serving policy, decisions, fallbacks,
dead letters and the age of the last allocation. The page reads that text with
``prometheus_client``'s own parser rather than asking Prometheus: an operator's page should
work where no Prometheus runs, and a worker that stopped answering shows as such at once.
Metric names are matched by prefix so a counter shows whether the client library exposes it
with or without its ``_total`` suffix.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

SCRAPE_EVERY_S = 2.0
TIMEOUT_S = 1.5


def _get(url: str) -> tuple[int | None, str]:
    """(HTTP status, body) or (None, why) when the worker does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return int(response.status), response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode("utf-8", errors="replace")
    except (OSError, ValueError) as error:
        return None, str(getattr(error, "reason", error))[:200]


def summarize(text: str) -> dict[str, Any]:
    """The page's view of one worker's metrics text: lag, and per site what it serves, how
    many decisions and fallbacks, and how long ago it last allocated."""
    lag: dict[str, int] = {}
    sites: dict[str, dict[str, Any]] = defaultdict(dict)
    dead: dict[str, float] = defaultdict(float)
    ready: float | None = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            site = labels.get("site")
            if name.startswith("chuteflow_consumer_lag"):
                where = f"{labels.get('topic', '?')}[{labels.get('partition', '?')}]"
                lag[where] = int(value)
            elif name == "chuteflow_ready":
                ready = value
            elif name == "chuteflow_dead_letters_total":
                kind = labels.get("reason") or labels.get("kind") or "other"
                dead[kind] += value
            elif site is None:
                continue
            elif name == "chuteflow_serving_policy_info" and value == 1:
                sites[site]["serving"] = f"{labels.get('policy')}@{labels.get('version', '')}"
                if "route_revision" in labels:
                    sites[site]["route_revision"] = labels["route_revision"]
            elif name == "chuteflow_decisions_total" and labels.get("role") == "served":
                sites[site]["decisions"] = sites[site].get("decisions", 0) + int(value)
            elif name == "chuteflow_fallbacks_total":
                sites[site]["fallbacks"] = sites[site].get("fallbacks", 0) + int(value)
            elif name == "chuteflow_last_allocation_age_seconds":
                sites[site]["last_allocation_age_s"] = value
            elif name == "chuteflow_recirculation_ratio":
                sites[site]["recirculation_rate"] = value
            elif name == "chuteflow_day_open":
                sites[site]["day_open"] = bool(value)
            elif name == "chuteflow_decision_latency_seconds_sum":
                sites[site]["_latency_sum"] = sites[site].get("_latency_sum", 0.0) + value
            elif name == "chuteflow_decision_latency_seconds_count":
                sites[site]["_latency_n"] = sites[site].get("_latency_n", 0.0) + value
    for view in sites.values():
        n = view.pop("_latency_n", 0.0)
        total = view.pop("_latency_sum", 0.0)
        if n:
            view["mean_latency_ms"] = 1e3 * total / n
    return {
        "lag_total": sum(lag.values()),
        "lag": dict(sorted(lag.items())),
        "ready_gauge": ready,
        "sites": dict(sorted(sites.items())),
        "dead_letters": dict(sorted(dead.items())),
    }


def scrape(base_url: str) -> dict[str, Any]:
    """One worker's health now: ``/healthz`` and ``/readyz`` status codes and its metrics."""
    base = base_url.rstrip("/")
    if base.endswith("/metrics"):
        base = base[: -len("/metrics")]
    out: dict[str, Any] = {"url": base, "scraped_at": time.time()}
    out["healthz"], _ = _get(f"{base}/healthz")
    out["readyz"], _ = _get(f"{base}/readyz")
    status, body = _get(f"{base}/metrics")
    if status != 200:
        out["error"] = f"/metrics: {status if status is not None else body}"
        return out
    try:
        out.update(summarize(body))
    except ValueError as error:
        out["error"] = f"/metrics: unreadable ({str(error)[:200]})"
    return out


class HealthScraper:
    """Scrapes every worker URL every :data:`SCRAPE_EVERY_S` in a daemon thread."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self._state: dict[str, dict[str, Any]] = {url: {"url": url} for url in urls}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ops-health", daemon=True)

    def start(self) -> None:
        if self.urls:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            for url in self.urls:
                result = scrape(url)
                with self._lock:
                    self._state[url] = result
            self._stop.wait(SCRAPE_EVERY_S)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(self._state[url]) for url in self.urls]


__all__ = ["HealthScraper", "scrape", "summarize"]
