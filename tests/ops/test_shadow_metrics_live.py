"""ChuteflowShadowFarWorse end to end: a real worker serves proportional on a small site with a
policy that starves destinations in shadow, a small day is replayed through the real broker,
``chuteflow ops serve`` (its exact command line, a process of its own) follows the topics, and
its ``/metrics`` shows the shadow's counterfactual recirculation far above the served one's.
promtool then evaluates the shipped alert rule on exactly those scraped values: it must fire,
with the labels and text an on-call engineer will read."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from contracts.control import PolicyRef
from floor.scenario import Scenario, load_scenario
from localkafka import free_port
from replay.workers import chuteflow_command, start_worker, stop_worker
from stream.routing import new_route, publish_routes, read_routes
from tests.conftest import require_tool
from tests.stream.test_live_ops import _register, _replay, _site_scenario, _starving_policy

pytestmark = pytest.mark.kafka
RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
ALERT = "ChuteflowShadowFarWorse"


@pytest.fixture()
def site(kafka_topics: str, tmp_path: Path) -> Iterator[tuple[str, Path, Scenario]]:
    path = _site_scenario(tmp_path)
    worker = start_worker(
        kafka_topics,
        [str(path)],
        tmp_path / "worker",
        app_id=f"ops-twin-{uuid.uuid4().hex[:8]}",
        extra=["--inference-deadline-ms", "2000"],
    )
    try:
        yield kafka_topics, path, load_scenario(path)
    finally:
        stop_worker(worker)


def _scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _wait_for_feed(port: int, ops: Any, log: Path) -> None:
    """Until the page's feed has caught up with the topics: the test is about the shadow
    gauges of a day the page follows from its start, as an operator's page open before it."""
    deadline = time.monotonic() + 60
    while True:
        assert ops.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=2) as r:
                if (json.loads(r.read()).get("feed") or {}).get("caught_up"):
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.3)


def _wait_for_day(port: int, site_id: str, last: int, ops: Any, log: Path) -> dict[str, Any]:
    """The scrape once the page has compared the whole day (its last interval closed)."""
    deadline = time.monotonic() + 120
    while True:
        assert ops.poll() is None, log.read_text()[-3000:]
        try:
            scraped = _scrape(port)
        except OSError:
            scraped = {}
        through = [
            v for labels, v in scraped.get("chuteflow_shadow_twin_closed_interval", [])
            if labels["site"] == site_id
        ]  # fmt: skip
        if through == [last]:
            return scraped
        assert time.monotonic() < deadline, f"{scraped}\n{log.read_text()[-3000:]}"
        time.sleep(0.5)


def _render(template: str, labels: dict[str, str], value: float) -> str:
    """The rule's annotation as Prometheus renders it (only what the rule's text uses)."""
    text = " ".join(template.split())
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
    return text.replace("{{ $value | humanizePercentage }}", f"{100 * value:.4g}%")


def test_the_ops_page_exports_a_starving_shadow_and_the_alert_fires_on_it(
    site: tuple[str, Path, Scenario], tmp_path: Path
) -> None:
    promtool = require_tool("promtool")
    bootstrap, path, scenario = site
    site_id = scenario.site_id
    levels = scenario.max_chutes_per_destination + 1
    bad = _register(bootstrap, f"starve-{levels}", _starving_policy(levels))
    shadow = new_route(
        read_routes(bootstrap)[site_id],
        site_id,
        serving=PolicyRef(name="proportional"),
        shadows=[bad],
        action="shadow",
    )
    assert publish_routes(bootstrap, [shadow], wait_applied=True)[site_id].startswith("applied")

    port = free_port()
    log = tmp_path / "ops.log"
    command = [chuteflow_command(), "ops", "serve", "--port", str(port), "--scenario", str(path)]
    command += ["--shadow-twin-every", "2", "--bootstrap", bootstrap]
    with log.open("wb") as out:
        ops = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_feed(port, ops, log)
        result = _replay(bootstrap, scenario, on_allocation=None)
        assert len(result.allocations) == scenario.n_intervals
        started = time.monotonic()
        scraped = _wait_for_day(port, site_id, scenario.n_intervals - 1, ops, log)
        waited = time.monotonic() - started
    finally:
        stop_worker(ops)

    ratios = {
        labels["role"]: (labels, value)
        for labels, value in scraped["chuteflow_shadow_twin_recirculation_ratio"]
        if labels["site"] == site_id
    }
    inducted = {
        labels["role"]: value
        for labels, value in scraped["chuteflow_shadow_twin_inducted"]
        if labels["site"] == site_id
    }
    (compute_s,) = [
        v for labels, v in scraped["chuteflow_shadow_twin_compute_seconds"]
        if labels["site"] == site_id
    ]  # fmt: skip
    served, starving = ratios["served"], ratios["shadow"]
    print(
        f"ops /metrics: served {served[0]['policy']} {served[1]:.4f}, shadow "
        f"{starving[0]['policy']} {starving[1]:.4f} on {inducted['shadow']:.0f} inductions; "
        f"last comparison {compute_s:.2f} s; gauges {waited:.1f} s after the replay"
    )
    assert served[0]["policy"] == "proportional" and starving[0]["policy"] == bad.name
    assert starving[1] > 1.5 * served[1] and starving[1] - served[1] > 0.02
    assert inducted["shadow"] == inducted["served"] == result.kpis.inducted

    # the shipped rule on exactly these values: fires after its 15 minutes, with its text
    rule = next(
        r
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for r in group["rules"]
        if r.get("alert") == ALERT
    )
    series = [
        {
            "series": _series("chuteflow_shadow_twin_recirculation_ratio", labels),
            "values": f"{v!r}x40",
        }
        for labels, v in scraped["chuteflow_shadow_twin_recirculation_ratio"]
    ]
    series += [
        {"series": _series("chuteflow_shadow_twin_inducted", labels), "values": f"{v!r}x40"}
        for labels, v in scraped["chuteflow_shadow_twin_inducted"]
    ]
    labels = {"site": site_id, "policy": starving[0]["policy"], "version": starving[0]["version"]}
    expected = {
        name: _render(text, labels, starving[1] - served[1])
        for name, text in rule["annotations"].items()
    }
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "10m", "alertname": ALERT, "exp_alerts": []},
                    {
                        "eval_time": "20m",
                        "alertname": ALERT,
                        "exp_alerts": [
                            {
                                "exp_labels": {**labels, **rule["labels"]},
                                "exp_annotations": expected,
                            }
                        ],
                    },
                ],
            }
        ],
    }
    path_tests = tmp_path / "scraped.test.yml"
    path_tests.write_text(yaml.safe_dump(tests))
    done = subprocess.run(
        [promtool, "test", "rules", str(path_tests)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _series(name: str, labels: dict[str, str]) -> str:
    inner = ", ".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return f"{name}{{{inner}}}"
