"""The fleet replay (``replay/fleet.py``) and ``bench fleet`` (``chuteflow/fleet_bench.py``).

Without a broker: the fleet's sites (sizes, ids, aligned interval ends), the deadline rule and
the kill moment. With one: a few sites' shifts through two workers at ``--pace max`` give every
site exactly its in-process KPIs and allocations, and the allocation topic read back has every
site-interval once; with a worker SIGKILLed mid-shift the others take its sites over and the
same holds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chuteflow.fleet_bench import FleetSettings, bench_fleet, kill_moment, percentile
from floor.scenario import load_scenario
from floor.site import load_site
from replay.fleet import deadlines, make_fleet, site_partitions


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fleet")


def test_the_fleet_deals_three_sizes_with_interval_ends_that_coincide(fleet_dir: Path) -> None:
    sites = make_fleet(7, fleet_dir, hours=1.0, seed=5)
    assert [s.size for s in sites] == ["small", "medium", "large"] * 2 + ["small"]
    assert len({s.site_id for s in sites}) == 7
    assert len({s.seed for s in sites}) == 7  # each site its own day
    minutes = {s.size: s.scenario.interval_minutes for s in sites}
    assert minutes == {"small": 30, "medium": 15, "large": 5}
    assert all(30 % m == 0 for m in minutes.values())
    assert {s.demand.day_start.time() for s in sites} == {sites[0].demand.day_start.time()}
    assert {s.size: s.intervals for s in sites} == {"small": 2, "medium": 4, "large": 12}
    for site in sites:  # what a worker loads: the file, its groups and guardrails
        loaded = load_scenario(site.scenario_file)
        assert loaded.site_id == site.site_id
        load_site(loaded).check()
    assert set(site_partitions(sites)) == {s.site_id for s in sites}


def test_deadlines_are_a_grace_after_each_interval_start_and_the_first_at_the_shift_start(
    fleet_dir: Path,
) -> None:
    large = make_fleet(3, fleet_dir, hours=0.25)[2]
    due = deadlines(large, shift_start=1000.0, pace=10.0, grace_s=10.0)
    assert due == [1000.0, 1031.0, 1061.0, 1091.0]  # 5-minute intervals: 30 s wall apart


def test_the_kill_comes_just_before_the_boundary_every_site_closes_at(fleet_dir: Path) -> None:
    sites = make_fleet(3, fleet_dir, hours=1.0)
    assert kill_moment(sites, 10.0) == 1800.0 - 5.0  # 0.5 s of wall time before 06:30
    assert kill_moment(sites, None) == 1800.0


def test_percentile_interpolates() -> None:
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([5.0], 0.99) == 5.0


@pytest.mark.kafka
def test_a_small_fleet_equals_its_in_process_days(kafka_topics: str, tmp_path: Path) -> None:
    """Four sites (all three sizes) on two workers: exact KPIs and allocations, every
    site-interval on the topic once."""
    out = bench_fleet(
        FleetSettings(sites=4, workers=2, pace=None, hours=1.0), kafka_topics, tmp_path
    )
    assert out["kpis_equal"] and out["allocations_equal"], out["kpi_differences"]
    audit = out["audit"]
    # intervals replayed + the allocation decided at the last replayed close
    assert audit["site_intervals_expected"] == 3 + 5 + 13 + 3
    assert out["site_intervals_decided"] == audit["site_intervals_on_topic"] == 24
    assert audit["missing"] == [] and audit["decided_twice_differently"] == []
    assert set(out["latency"]) == {"small", "medium", "large"}
    assert out["on_time_share"] is None  # no wall clock to be late against at --pace max
    assert out["worker_cpu_s"] > 0 and out["idle_worker_rss_mb"] > 0
    # the warm-up's sites ran first, through the same workers, and count nowhere above
    assert out["warmup_sites"] == 6 and out["warmup_s"] > 0
    by_interval = {b["interval"]: b["decisions"] for b in out["boundaries"]}
    assert by_interval[0] == 4 and sum(by_interval.values()) == 24, out["boundaries"]
    assert all(b["misses"] == 0 for b in out["boundaries"])


@pytest.mark.kafka
def test_a_killed_worker_s_sites_are_taken_over_and_still_equal(
    kafka_topics: str, tmp_path: Path
) -> None:
    """One worker of two SIGKILLed mid-shift (no successor with its id): the other takes its
    sites after the session timeout; no interval is lost or decided differently twice and
    every site still equals its in-process day."""
    out = bench_fleet(
        FleetSettings(sites=3, workers=2, pace=None, hours=1.0, kill_one=True, warmup=False),
        kafka_topics,
        tmp_path,
    )
    assert out["warmup_sites"] == 0  # --no-warmup: the measured sites' days come first
    kill = out["kill"]
    assert kill["sites_owned"] >= 1
    assert kill["sites_taken_over"] == kill["sites_owned"], kill
    assert kill["handover_s"] is not None and kill["handover_s"] < 60, kill
    assert out["kpis_equal"] and out["allocations_equal"], out["kpi_differences"]
    assert out["audit"]["missing"] == [] and out["audit"]["decided_twice_differently"] == []
