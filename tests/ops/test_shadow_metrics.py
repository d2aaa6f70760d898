"""The ops page's shadow twin gauges, without a broker: a small-site day decided by the
worker's own processor (proportional serving, a policy that starves destinations in shadow),
closed loop with the twin, its records fed to the page's model as its follower would. The
gauges must equal the shadow report's comparison of the same day, show the starving shadow
far above the served policy, wait for an interval close, and never block a scrape."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from contracts.codec import decode, encode
from contracts.control import PolicyRef, PolicyRoute
from contracts.events import AllocationDecided, DayStarted, Envelope
from contracts.topics import (
    ALLOCATIONS,
    CHUTE_STATE,
    CONTROL,
    INDUCTIONS,
    INTERVALS,
    SHADOW,
    SORTATION,
)
from decision.artifacts import PolicyArtifact, inspect_artifact
from floor.daytypes import default_groups
from floor.scenario import Scenario, load_scenario
from ops.model import OpsModel
from ops.shadow_metrics import ShadowTwinMetrics
from ops.twin_days import TwinDays
from replay.loop import owner_of
from replay.publisher import MemoryPublisher
from rollout.observe import SiteDay, floor_counts
from rollout.shadow import compare
from stream.processor import StreamProcessor
from stream.topic_reader import Record
from stream.worker import make_site
from tests.stream.test_live_ops import _starving_policy
from twin.groups import sample_day
from twin.sim import SortationTwin

Day = tuple[Scenario, list[Record], PolicyArtifact]
DAY_GROUP, DAY_SEED = 1, 5
CONTRACT = {t.name for t in (INDUCTIONS, SORTATION, CHUTE_STATE, INTERVALS, ALLOCATIONS, SHADOW)}


def _starving(scenario: Scenario) -> PolicyArtifact:
    data = _starving_policy(scenario.max_chutes_per_destination + 1)
    check = inspect_artifact(data, ["small"])
    return PolicyArtifact("starve", check.sha256, data, ("small",))


@pytest.fixture(scope="module")
def day() -> Day:
    """Every record of one small-site day, in the order the worker saw and wrote them."""
    scenario = load_scenario("small")
    starving = _starving(scenario)
    processor = StreamProcessor(
        {scenario.site_id: make_site(scenario, "proportional", None, fetch=lambda _: starving)}
    )
    records: list[Record] = []

    def feed(topic: str, value: bytes) -> None:
        records.append(_record(topic, scenario.site_id, value, len(records)))
        for out in processor.handle(topic, scenario.site_id.encode(), value, 0, len(records)):
            records.append(_record(out.topic, scenario.site_id, out.value, len(records)))

    start = datetime(2025, 1, 6, 5, tzinfo=UTC)
    route = PolicyRoute(
        event_id="shadow-starve",
        event_time=start,
        site_id=scenario.site_id,
        revision=1,
        serving=PolicyRef(name="proportional"),
        shadows=[PolicyRef(name="starve", sha256=starving.sha256)],
        action="shadow",
        reason="test",
    )
    feed(CONTROL.name, encode(route))
    demand = sample_day(default_groups(scenario), DAY_GROUP, scenario, seed=DAY_SEED)
    feed(
        INTERVALS.name,
        encode(
            DayStarted(
                event_id="ops-twin-day",
                event_time=demand.day_start,
                site_id=scenario.site_id,
                day_start=demand.day_start,
            )
        ),
    )
    publisher = MemoryPublisher()
    twin = SortationTwin(scenario, demand, seed=7, emit=publisher.publish)
    for _ in range(scenario.n_intervals):
        served = [
            event
            for r in records
            if r.topic == ALLOCATIONS.name and r.value is not None
            for event in [decode(r.value)]
            if isinstance(event, AllocationDecided)
        ]
        twin.run_interval(owner_of(scenario, served[-1]))
        emitted, publisher.records = publisher.records, []
        for topic, _, value in emitted:
            feed(topic, value)
    assert any(r.topic == SHADOW.name for r in records)
    return scenario, records, starving


def _record(topic: str, site: str, value: bytes, n: int) -> Record:
    return Record(topic, 0, n, site.encode(), value, 1_736_139_600_000 + n)


def _gauges(metrics: ShadowTwinMetrics) -> dict[tuple[str, str], dict[str, Any]]:
    """(metric, role) -> {"policy", "version", "value"}, from the exported text."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    text = generate_latest(metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "role" in sample.labels:
                out[(sample.name, sample.labels["role"])] = {
                    **sample.labels,
                    "value": sample.value,
                }
            else:
                out[(sample.name, sample.labels["site"])] = {"value": sample.value}
    return out


def _page(scenario: Scenario, starving: PolicyArtifact) -> tuple[OpsModel, ShadowTwinMetrics]:
    model = OpsModel()
    days = TwinDays({scenario.site_id: scenario})
    model.observers.append(days.observe)
    return model, ShadowTwinMetrics(days, lambda _: starving, every_s=0.0)


def test_the_gauges_are_the_shadow_reports_numbers_and_show_a_starving_shadow(day: Day) -> None:
    scenario, records, starving = day
    model, metrics = _page(scenario, starving)
    for record in records:
        model.apply(record)
    metrics.run_once()
    gauges = _gauges(metrics)
    served = gauges[("chuteflow_shadow_twin_recirculation_ratio", "served")]
    shadow = gauges[("chuteflow_shadow_twin_recirculation_ratio", "shadow")]
    inducted = gauges[("chuteflow_shadow_twin_inducted", "shadow")]
    assert served["policy"] == "proportional" and shadow["policy"] == "starve"
    assert shadow["value"] > 1.5 * served["value"] and shadow["value"] > served["value"] + 0.02
    assert inducted["value"] >= 1000
    last = scenario.n_intervals - 1
    assert gauges[("chuteflow_shadow_twin_closed_interval", scenario.site_id)]["value"] == last

    # the shadow report on the same day, built from every floor event: the same figures
    decoded: list[tuple[str, Envelope]] = [
        (r.topic, decode(r.value)) for r in records if r.value is not None and r.topic in CONTRACT
    ]
    floor = [
        e for topic, e in decoded if topic in {INDUCTIONS.name, SORTATION.name, CHUTE_STATE.name}
    ]
    allocations = {
        e.interval_index: e
        for topic, e in decoded
        if isinstance(e, AllocationDecided) and topic == ALLOCATIONS.name
    }
    shadows = {
        e.decision_id.rsplit("/", 1)[-1]: {e.interval_index: e}
        for topic, e in decoded
        if isinstance(e, AllocationDecided) and topic == SHADOW.name and e.interval_index == 0
    }
    started = next(e for _, e in decoded if isinstance(e, DayStarted))
    site_day = SiteDay(
        site_id=scenario.site_id,
        day_key=started.day_key(),
        day_start=started.day_start,
        day_type_group=None,
        floor_events=floor,
        closed_through=last,
        allocations=allocations,
        shadow=shadows,
    )
    site_day.floor = floor_counts(scenario, site_day)
    report = compare(scenario, site_day, lambda _: starving)
    by_role = {row.label.rsplit("(", 1)[1].split(",")[0]: row for row in report.rows[1:]}
    assert served["value"] == pytest.approx(by_role["served"].recirculation_rate, abs=1e-12)
    assert shadow["value"] == pytest.approx(by_role["shadow"].recirculation_rate, abs=1e-12)
    assert inducted["value"] == by_role["shadow"].inducted
    assert by_role["served"].inducted == report.rows[0].inducted  # the floor's arrivals


def test_a_site_is_compared_once_per_closed_interval_and_a_scrape_never_waits(day: Day) -> None:
    scenario, records, starving = day
    model, metrics = _page(scenario, starving)
    closes = [
        i
        for i, r in enumerate(records)
        if r.topic == INTERVALS.name and b"interval_closed" in (r.value or b"")
    ]
    for record in records[: closes[1] + 1]:  # through the second interval's close
        model.apply(record)
    metrics.run_once()
    first = metrics.results[scenario.site_id]
    assert first.closed_through == 1
    metrics.run_once()  # nothing closed since: no new comparison
    assert metrics.results[scenario.site_id] is first

    for record in records[closes[1] + 1 :]:
        model.apply(record)
    compared = threading.Event()

    def slow_fetch(_: PolicyRef) -> PolicyArtifact:
        time.sleep(1.0)
        return starving

    def compare_once() -> None:
        slow.run_once()
        compared.set()

    slow = ShadowTwinMetrics(metrics.days, slow_fetch)
    slow.results = dict(metrics.results)
    runner = threading.Thread(target=compare_once)
    runner.start()
    time.sleep(0.2)
    scraped_at = time.perf_counter()
    text = generate_latest(slow.registry).decode()  # while the comparison runs
    assert time.perf_counter() - scraped_at < 0.5 and not compared.is_set()
    assert 'chuteflow_shadow_twin_closed_interval{site="site-small"} 1.0' in text
    runner.join(60)
    last = scenario.n_intervals - 1
    assert slow.results[scenario.site_id].closed_through == last


def test_a_failing_comparison_is_reported_once_and_exported(day: Day) -> None:
    scenario, records, _ = day
    lines: list[str] = []

    def missing(ref: PolicyRef) -> PolicyArtifact:
        raise LookupError(f"policy {ref.label} is not in the store")

    model = OpsModel()
    days = TwinDays({scenario.site_id: scenario})
    model.observers.append(days.observe)
    metrics = ShadowTwinMetrics(days, missing, every_s=0.0, log=lines.append)
    for record in records:
        model.apply(record)
    metrics.run_once()
    metrics._last_try.clear()
    metrics.run_once()
    assert len(lines) == 1 and "is not in the store" in lines[0], lines
    text = generate_latest(metrics.registry).decode()
    assert 'chuteflow_shadow_twin_failing{site="site-small"} 1.0' in text
    assert "chuteflow_shadow_twin_recirculation_ratio{" not in text


def test_records_read_before_their_day_started_are_kept(day: Day) -> None:
    """One consumer delivers its topics in no set order while catching up: floor records and
    decisions that arrive before their ``day_started`` are held, then applied, not lost."""
    scenario, records, starving = day
    in_order, _ = _page(scenario, starving)
    reordered, metrics = _page(scenario, starving)
    started = next(
        r for r in records if r.topic == INTERVALS.name and b"day_started" in (r.value or b"")
    )
    for record in records:
        in_order.apply(record)
    for record in [r for r in records if r is not started] + [started]:
        reordered.apply(record)
    expected = in_order.sites[scenario.site_id].current_day()
    got = reordered.sites[scenario.site_id].current_day()
    assert expected is not None and got is not None
    assert got.floor == expected.floor and sum(got.floor["inducted"].values()) > 1000
    assert (
        got.served.keys() == expected.served.keys()
        and got.closed_through == scenario.n_intervals - 1
    )
    metrics.run_once()
    assert metrics.results[scenario.site_id].rows[0].inducted == sum(got.floor["inducted"].values())
