"""≥100,000 hostile records mixed into a live replayed day, and the worker's metrics endpoint.

The worker must stay up, dead-letter every hostile record (produced = dead-lettered +
accepted, checked both on the dead-letter topic and in the worker's own metrics), and decide
the day exactly as on the clean day (KPIs equal). The metrics endpoint is scraped mid-day.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from contracts.events import AllocationDecided
from contracts.topics import DEAD_LETTER
from decision.build import build_engine
from floor.daytypes import default_groups
from floor.scenario import load_scenario
from floor.site import load_site
from localkafka import free_port
from replay.loop import day_type_group, replay_day, replay_day_key
from replay.workers import PROBE, start_worker, stop_worker
from stream.processor import INPUT_TOPICS
from tests.reliability.fuzz import Fuzzer
from tests.reliability.harness import Broker, own_broker
from twin.closed_loop import run_day
from twin.groups import sample_day

HOSTILE = int(os.environ.get("FUZZ_RECORDS", "100000"))
SCENARIO = os.environ.get("RELIABILITY_SCENARIO", "small")

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _end_offsets(consumer: Consumer, topic: str, partitions: int) -> list[TopicPartition]:
    ends = []
    for p in range(partitions):
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends.append(TopicPartition(topic, p, high))
    return ends


def _scrape(port: int) -> dict[str, float]:
    """Every sample of the endpoint as ``name{labels}`` -> value."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples = {}
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][^ ]*) ([-+0-9.eEinfNa]+)$", line)
        if match:
            samples[match.group(1)] = float(match.group(2))
    return samples


def _total(samples: dict[str, float], name: str) -> float:
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


def _accepted(samples: dict[str, float]) -> float:
    """Input records applied: consumed minus dead-lettered."""
    return _total(samples, "chuteflow_records_total") - _total(
        samples, "chuteflow_dead_letters_total"
    )


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    if os.environ.get("CHUTEFLOW_SKIP_KAFKA") == "1":
        pytest.skip("CHUTEFLOW_SKIP_KAFKA=1")
    with own_broker(tmp_path_factory.mktemp("fuzz-kafka")) as running:
        yield running


def test_hostile_records_mixed_into_a_live_day_change_nothing(
    broker: Broker, tmp_path: Path
) -> None:
    scenario = load_scenario(SCENARIO)
    groups = default_groups(scenario)
    demand = sample_day(groups, 1, scenario, seed=7)
    run_id = "fuzz"
    day = replay_day_key(scenario.site_id, demand, run_id)
    clean = run_day(build_engine(load_site(scenario), "proportional"), demand, 7, day=day)

    bootstrap = broker.bootstrap
    tap = Consumer({"bootstrap.servers": bootstrap, "group.id": "fuzz-tap"})
    dead_start = _end_offsets(tap, DEAD_LETTER.name, DEAD_LETTER.partitions)
    port = free_port()
    worker = start_worker(
        bootstrap,
        [SCENARIO],
        tmp_path,
        app_id="fuzz-worker",
        extra=["--metrics-port", str(port)],
    )
    legit_tap = Consumer({"bootstrap.servers": bootstrap, "group.id": "fuzz-legit"})
    legit_tap.assign(
        [tp for spec in INPUT_TOPICS for tp in _end_offsets(legit_tap, spec.name, spec.partitions)]
    )
    fuzzer = Fuzzer(scenario, demand.day_start, seed=11)
    # murmur2 as the contract requires: keyed hostile records land on the site's partition
    # and reach its validation (librdkafka's default would dead-letter them as wrong_partition)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "message.max.bytes": 2_000_000,
            "partitioner": "murmur2_random",
        }
    )
    sent: Counter[str] = Counter()
    sent_values: dict[str, tuple[str, bytes]] = {}
    per_interval = -(-HOSTILE // scenario.n_intervals)
    mid_day: dict[str, float] = {}

    def mix_in(allocation: AllocationDecided) -> None:
        """Before each interval plays: take the day's records so far, then send a share of
        the hostile records (duplicates among them copy records already on the topics)."""
        while (message := legit_tap.poll(0.05)) is not None:
            if message.error() is None and message.key() == fuzzer.key:
                fuzzer.legit.append((message.topic(), message.key(), message.value() or b""))
        quota = min(per_interval, HOSTILE - sum(sent.values()))
        for _ in range(quota):
            kind, (topic, key, value) = fuzzer.next()
            producer.produce(topic, value, key=key)
            sent[kind] += 1
            sent_values[hashlib.sha256(value).hexdigest()] = (kind, value[:300])
            if len(producer) > 50_000:
                producer.flush()
        producer.flush()
        if allocation.interval_index == scenario.n_intervals // 2:
            mid_day.update(_scrape(port))

    try:
        result = replay_day(
            demand,
            7,
            bootstrap,
            day_type_group(groups, demand),
            run_id=run_id,
            allocation_timeout_s=180,
            on_allocation=mix_in,
        )
        hostile = sum(sent.values())
        # Let the worker drain what was sent after the last allocation.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            samples = _scrape(port)
            if (
                _accepted(samples) >= result.events_published
                and _total(samples, "chuteflow_dead_letters_total") >= hostile
            ):
                break
            time.sleep(1.0)
        assert worker.poll() is None, "the worker died"
        end = _scrape(port)
        # and until every dead letter it counted is on the topic
        counted = int(_total(end, "chuteflow_dead_letters_total"))
        while time.monotonic() < deadline:
            ends = _end_offsets(tap, DEAD_LETTER.name, DEAD_LETTER.partitions)
            on_topic = sum(e.offset - s.offset for e, s in zip(ends, dead_start, strict=True))
            if on_topic >= counted:
                break
            time.sleep(0.5)
    finally:
        stop_worker(worker)
        legit_tap.close()

    # Dead letters on the topic, read independently: one per hostile record, plus the probes.
    tap.assign(dead_start)
    ends = {
        tp.partition: tp.offset
        for tp in _end_offsets(tap, DEAD_LETTER.name, DEAD_LETTER.partitions)
    }
    letters: Counter[str] = Counter()
    probes = hostile_letters = 0
    lettered: set[str] = set()
    position = {tp.partition: tp.offset for tp in dead_start}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and any(position[p] < ends[p] for p in ends):
        for message in tap.consume(num_messages=2000, timeout=1.0):
            if message.error() is not None:
                continue
            position[message.partition()] = message.offset() + 1
            body = json.loads(message.value() or b"{}")
            if base64.b64decode(body["value_base64"]) == PROBE:
                probes += 1
                continue
            hostile_letters += 1
            letters[body["kind"]] += 1
            lettered.add(body["value_sha256"])
            assert len(message.value() or b"") < 64 * 1024, "a dead letter must stay small"
    tap.close()

    summary = {
        "hostile_sent": hostile,
        "by_kind_sent": dict(sent),
        "dead_letters_by_kind": dict(letters),
        "legit_events": result.events_published,
        "metrics_records_in": _total(end, "chuteflow_records_total"),
        "metrics_accepted": _accepted(end),
        "metrics_dead_letters": _total(end, "chuteflow_dead_letters_total"),
    }
    print(json.dumps(summary, sort_keys=True))
    if os.environ.get("RELIABILITY_OUT"):
        record = {"mode": "fuzz", "kpis_equal": result.kpis == clean.kpis, **summary}
        with Path(os.environ["RELIABILITY_OUT"]).open("a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
    not_lettered = [sent_values[h] for h in set(sent_values) - lettered]
    print("hostile records without a dead letter:", not_lettered[:5])
    assert hostile >= HOSTILE
    assert hostile_letters == hostile, summary
    assert summary["metrics_accepted"] == result.events_published, summary
    assert summary["metrics_dead_letters"] == hostile + probes, summary
    # every record consumed counted once: the day's, the hostile ones and the probes
    assert summary["metrics_records_in"] == result.events_published + hostile + probes, summary
    assert result.kpis == clean.kpis

    # The endpoint mid-day: every metric family, with sensible values.
    site = scenario.site_id
    assert _total(mid_day, "chuteflow_records_total") > 0
    assert _total(mid_day, "chuteflow_decision_latency_seconds_count") >= scenario.n_intervals // 2
    assert 0 < _total(mid_day, "chuteflow_decision_latency_seconds_sum") < 60
    assert _total(mid_day, "chuteflow_allocations_total") >= scenario.n_intervals // 2
    # route_revision: 1 once the worker published its "worker-default" route (stream/routing.py)
    revision = int(mid_day[f'chuteflow_route_revision{{site="{site}"}}'])
    info = 'chuteflow_serving_policy_info{policy="proportional",route_revision="%d",site="%s",'
    assert info % (revision, site) + 'version="1"}' in mid_day
    rate = mid_day[f'chuteflow_recirculation_ratio{{site="{site}"}}']
    assert 0.0 <= rate < 1.0
    assert any(k.startswith("chuteflow_consumer_lag_records{") for k in mid_day)
    assert any(k.startswith("chuteflow_decisions_total{") for k in mid_day)
