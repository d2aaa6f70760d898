"""A real worker after a replayed day: every metric family by name, type and labels, exact
counts, and its default log (one line per decision per interval, no control characters)."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts.topics import TOPIC_FOR_EVENT
from floor.daytypes import default_groups
from floor.scenario import load_scenario
from localkafka.launcher import free_port
from replay.loop import day_type_group, replay_day
from replay.workers import start_worker, stop_worker
from twin.groups import sample_day

pytestmark = pytest.mark.kafka

FAMILIES = {
    # name (as the parser gives it: counters without _total): (type, labels)
    "chuteflow_decision_latency_seconds": ("histogram", {"site", "role", "policy"}),
    "chuteflow_decisions": ("counter", {"site", "role", "policy", "version", "solver_status"}),
    "chuteflow_fallbacks": ("counter", {"site", "reason"}),
    "chuteflow_records": ("counter", {"site", "topic"}),
    "chuteflow_allocations": ("counter", {"site"}),
    "chuteflow_dead_letters": ("counter", {"site", "reason"}),
    "chuteflow_inducted": ("counter", {"site"}),
    "chuteflow_recirculated": ("counter", {"site"}),
    "chuteflow_redelivered_skipped": ("counter", {"site"}),
    "chuteflow_recirculation_ratio": ("gauge", {"site"}),
    "chuteflow_serving_policy_info": ("gauge", {"site", "policy", "version", "route_revision"}),
    "chuteflow_route_revision": ("gauge", {"site"}),
    "chuteflow_last_allocation_timestamp_seconds": ("gauge", {"site"}),
    "chuteflow_last_allocation_age_seconds": ("gauge", {"site"}),
    "chuteflow_allocation_spacing_seconds": ("gauge", {"site"}),
    "chuteflow_day_open": ("gauge", {"site"}),
    "chuteflow_consumer_lag_records": ("gauge", {"topic", "partition"}),
    "chuteflow_ready": ("gauge", set()),
}
OLD_NAMES = (
    "chuteflow_recirculation_rate",
    "chuteflow_serving_policy{",
    "chuteflow_records_in",
    "chuteflow_allocations_out",
    "chuteflow_policy_fallbacks",
    "chuteflow_consumer_lag{",
)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= ls)


def test_a_replayed_day_is_counted_exactly_and_logged_one_line_per_decision(
    kafka_topics: str, tmp_path: Path
) -> None:
    scenario = load_scenario("small")
    site = scenario.site_id
    groups = default_groups(scenario)
    demand = sample_day(groups, 2, scenario, seed=5)
    port = free_port()
    app_id = f"metrics-{uuid.uuid4().hex[:8]}"
    worker = start_worker(
        kafka_topics, ["small"], tmp_path, app_id=app_id, extra=["--metrics-port", str(port)]
    )
    try:
        result = replay_day(demand, 5, kafka_topics, day_type_group(groups, demand), run_id=app_id)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = samples(scrape(port))
            if total(found, "chuteflow_records_total", site=site) >= result.events_published:
                break
            time.sleep(0.5)
        time.sleep(1.0)  # anything counted twice would show now
        text = scrape(port)
        assert worker.poll() is None, "the worker died"
    finally:
        stop_worker(worker)
    log = (tmp_path / f"{app_id}.log").read_bytes()

    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, (kind, labels) in FAMILIES.items():
        assert name in families, f"{name} missing"
        assert families[name].type == kind, (name, families[name].type)
        for sample in families[name].samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample.labels)
    for old in OLD_NAMES:
        assert old not in text, f"old metric name {old} still exposed"

    found = samples(text)
    n = scenario.n_intervals
    assert total(found, "chuteflow_allocations_total", site=site) == n
    assert total(found, "chuteflow_decisions_total", site=site, role="served") == n
    assert total(found, "chuteflow_decision_latency_seconds_count", site=site, role="served") == n
    assert 0 < total(found, "chuteflow_decision_latency_seconds_sum", site=site) < 10
    assert total(found, "chuteflow_inducted_total", site=site) == result.kpis.inducted
    recirculated = result.per_topic.get("package_recirculated", 0)
    assert total(found, "chuteflow_recirculated_total", site=site) == recirculated
    ratio = found[("chuteflow_recirculation_ratio", frozenset({("site", site)}))]
    assert ratio == pytest.approx(recirculated / result.kpis.inducted)
    by_topic: Counter[str] = Counter()
    for kind, count in result.per_topic.items():
        by_topic[TOPIC_FOR_EVENT[kind].name] += count
    by_topic[TOPIC_FOR_EVENT["day_started"].name] += 1
    for topic, count in by_topic.items():
        assert total(found, "chuteflow_records_total", site=site, topic=topic) == count, topic
    assert total(found, "chuteflow_records_total", site=site) == result.events_published
    assert total(found, "chuteflow_dead_letters_total", site=site) == 0
    # the readiness probes are undecodable and keyed "probe": dead letters of site "unknown"
    assert total(found, "chuteflow_dead_letters_total", site="unknown", reason="decode") >= 1
    # the route revision the info carries is the one the gauge shows (a worker publishes a
    # revision-1 "worker-default" route for a site that has none: stream/routing.py)
    revision = found[("chuteflow_route_revision", frozenset({("site", site)}))]
    info = {"site": site, "policy": "proportional", "version": "1"}
    info["route_revision"] = str(int(revision))
    serving = [(dict(k[1]), v) for k, v in found.items() if k[0] == "chuteflow_serving_policy_info"]
    assert serving == [(info, 1.0)]
    assert found[("chuteflow_day_open", frozenset({("site", site)}))] == 0  # the day is over
    stamp = found[("chuteflow_last_allocation_timestamp_seconds", frozenset({("site", site)}))]
    assert time.time() - 120 < stamp <= time.time()
    assert found[("chuteflow_last_allocation_age_seconds", frozenset({("site", site)}))] >= 0
    assert found[("chuteflow_allocation_spacing_seconds", frozenset({("site", site)}))] > 0
    assert found[("chuteflow_ready", frozenset())] == 1

    # The default log: readable, one INFO line per decision, no terminal control characters.
    assert b"\x1b" not in log
    lines = log.decode().splitlines()
    decisions = [line for line in lines if " chuteflow.decisions served decision " in line]
    intervals = sorted(int(line.split(" interval=")[1].split()[0]) for line in decisions)
    assert intervals == list(range(n)), decisions
    assert all(f"site={site} " in line and "latency_ms=" in line for line in decisions)
    assert all("policy=proportional@1 " in line and "status=" in line for line in decisions)
    assert sum("worker starting: sites [site-small policy=proportional@1" in x for x in lines) == 1
    assert any(" chuteflow.dead_letters dead letter (decode) site=unknown " in x for x in lines)
    chatter = [
        x for x in lines if any(f" INFO {lib}" in x for lib in ("faust", "mode", "aiokafka"))
    ]
    assert chatter == []
