"""A real Prometheus scrapes a real worker; killing the worker fires the alerts that page.

Debian's ``prometheus`` binary runs ``deploy/prometheus/prometheus.yml`` itself, with only the
intervals shortened to 1 s and the target replaced by a worker this test starts, and the real
``deploy/prometheus/alerts.yml`` (not a test copy: the rules must work at this pace as they
are). A small-site day is replayed at 300x real time (one allocation every ~6 s); once
Prometheus has seen allocations flowing and both alerts inactive, the worker is killed with
SIGKILL mid-day, and ``ChuteflowWorkerDown`` and ``ChuteflowAllocationLate`` must go from
inactive to firing within 60 s. Every query of the Grafana dashboard is also run against this
Prometheus, so a panel that fails at query time (not only at parse time) fails here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from localkafka.launcher import free_port
from replay.workers import chuteflow_command, start_worker, stop_worker
from tests.conftest import require_tool

pytestmark = pytest.mark.kafka

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SITE = "site-small"
SPEED = 300
"""A 30-minute interval every 6 s: several allocations before the kill, half a day after it."""
PAGING = ("ChuteflowWorkerDown", "ChuteflowAllocationLate")
FIRE_WITHIN_S = 60.0
ABSENT_ON_A_HEALTHY_DAY = {"chuteflow_fallbacks_total"}
"""Worker series that exist only once something went wrong (no fallback on a healthy day)."""


class PrometheusApi:
    """The few HTTP API calls the test needs."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def rule_states(self) -> dict[str, str]:
        """Alert name -> ``inactive`` / ``pending`` / ``firing`` (rules that failed: their
        health, e.g. ``err``)."""
        states = {}
        for group in self.get("/api/v1/rules", type="alert")["groups"]:
            for rule in group["rules"]:
                states[rule["name"]] = rule["state"] if rule["health"] == "ok" else rule["health"]
        return states

    def firing(self) -> set[str]:
        alerts = self.get("/api/v1/alerts")["alerts"]
        return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL, by pid; reaped either way."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


@contextlib.contextmanager
def running_prometheus(metrics_port: int, workdir: Path) -> Iterator[PrometheusApi]:
    """deploy/prometheus/prometheus.yml at 1 s intervals, scraping 127.0.0.1:metrics_port."""
    binary = require_tool("prometheus")
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(DEPLOY / "prometheus" / name) for name in config["rule_files"]]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"chuteflow-worker", "chuteflow-ops"}
    job = jobs["chuteflow-worker"]  # the ops page is not under test here
    job["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_port}"]}]
    config["scrape_configs"] = [job]
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={path}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    api = PrometheusApi(port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{api.base}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (workdir / "prometheus.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"prometheus did not become ready:\n{tail}")
            time.sleep(0.3)
        yield api
    finally:
        _stop(process)


def _wait_for(what: str, check: Any, timeout_s: float, workdir: Path) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    logs = "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in workdir.glob("*.log")
    )
    pytest.fail(f"timed out waiting for {what}\n{logs}")


def _worker_metric_names() -> set[str]:
    """chuteflow_* names the alert rules and the dashboard query from the worker."""
    names: set[str] = set()
    texts = [(DEPLOY / "prometheus/alerts.yml").read_text()]
    texts.append((DEPLOY / "grafana/dashboards/chuteflow.json").read_text())
    for text in texts:
        names |= set(re.findall(r"\bchuteflow_[a-z0-9_]+", text))
    # histogram series -> what the exposition shows; the shadow twin's gauges are not the
    # worker's (they come from the shadow exporter: docs/runbook.md#chuteflowshadowfarworse)
    return {n for n in names if not n.startswith("chuteflow_shadow_twin_")}


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/chuteflow.json").read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def test_killing_the_worker_fires_worker_down_and_allocation_late(
    kafka_topics: str, tmp_path: Path
) -> None:
    require_tool("prometheus")
    metrics_port = free_port()
    worker = start_worker(
        kafka_topics,
        ["small"],
        tmp_path / "worker",
        app_id=f"prom-live-{uuid.uuid4().hex[:8]}",
        extra=["--metrics-port", str(metrics_port)],
    )
    replay: subprocess.Popen[bytes] | None = None
    try:
        with running_prometheus(metrics_port, tmp_path) as prometheus:
            log = (tmp_path / "replay.log").open("wb")
            replay = subprocess.Popen(
                [
                    chuteflow_command(),
                    "replay",
                    "--scenario",
                    "small",
                    "--group",
                    "1",
                    "--seed",
                    "5",
                    "--speed",
                    str(SPEED),
                    "--bootstrap",
                    kafka_topics,
                    "--timeout",
                    "180",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            site = f'{{job="chuteflow-worker", site="{SITE}"}}'

            # Allocations flow, the day is open, the spacing is measured: the rules have
            # live data to work on, and neither paging alert is pending or firing.
            def flowing() -> bool:
                allocations = prometheus.value(f"chuteflow_allocations_total{site}")
                return (
                    prometheus.value('up{job="chuteflow-worker"}') == 1
                    and allocations is not None
                    and allocations >= 4
                    and prometheus.value(f"chuteflow_day_open{site}") == 1
                    and prometheus.value(f"chuteflow_allocation_spacing_seconds{site}") is not None
                )

            _wait_for("allocations to flow through the worker", flowing, 120, tmp_path)
            states = prometheus.rule_states()
            assert {states[name] for name in PAGING} == {"inactive"}, states
            assert all(state in ("inactive", "pending", "firing") for state in states.values()), (
                states
            )

            # Every worker metric the rules and the dashboard name is really exported.
            exported = set(prometheus.get("/api/v1/label/__name__/values"))
            expected = {
                n for n in _worker_metric_names() if not n.endswith(("_bucket", "_sum", "_count"))
            }
            missing = expected - exported - ABSENT_ON_A_HEALTHY_DAY
            assert not missing, f"named by alerts/dashboard, not exported by the worker: {missing}"

            # Every dashboard query runs (matching errors show only at query time); those on
            # the worker's own series return data.
            for title, expr in _dashboard_queries():
                concrete = expr.replace('"$site"', '".+"').replace('"$site|unknown"', '".+"')
                concrete = concrete.replace("$__rate_interval", "1m")
                result = prometheus.query(concrete)
                optional = ("chuteflow_shadow_twin_", "chuteflow_fallbacks_total", 'role="shadow"')
                if not any(word in expr for word in optional):
                    assert result, f"dashboard panel {title!r} returned no data: {concrete}"

            spacing = prometheus.value(f"chuteflow_allocation_spacing_seconds{site}")
            os.kill(worker.pid, signal.SIGKILL)
            killed = time.monotonic()
            worker.wait(10)

            fired_after: dict[str, float] = {}
            deadline = killed + FIRE_WITHIN_S
            while len(fired_after) < len(PAGING) and time.monotonic() < deadline:
                for name in prometheus.firing() & set(PAGING) - set(fired_after):
                    fired_after[name] = time.monotonic() - killed
                time.sleep(0.25)
            print(
                f"spacing before the kill {spacing:.1f} s; firing after the kill: "
                + ", ".join(f"{n} {s:.1f} s" for n, s in sorted(fired_after.items()))
            )
            assert set(fired_after) == set(PAGING), (
                f"within {FIRE_WITHIN_S:.0f} s of SIGKILL only {fired_after} fired; "
                f"rule states now: {prometheus.rule_states()}"
            )
    finally:
        if replay is not None:
            _stop(replay)
        stop_worker(worker)
