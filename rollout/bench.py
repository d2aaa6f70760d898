"""``chuteflow bench shadow``: is the shadow report right, and what does a shadow cost?

Accuracy. For each day (group days and spike days of the large site), the floor is the twin
under the served policy P, emitting the contract events a live floor sends (the same events
replay publishes). The shadow report's counterfactual rate for Q, computed from those events
alone, is compared with ``simulate --policy Q`` on the same day over twin seeds 1..5: inside
their range, or within 10% of their mean. The ranking of P vs Q by the report must agree with
the ranking by the simulate means.

Cost. The worker's processor handles the day's records (in memory, no Kafka) once serving P
alone and once with Q in shadow; the ratio of the two handling times per interval is the
figure (the same allocations come out of both).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contracts.codec import encode
from contracts.control import PolicyRef, PolicyRoute
from contracts.events import AllocationDecided, DayStarted, Envelope
from contracts.topics import CONTROL, TOPIC_FOR_EVENT, message_key
from decision.artifacts import PolicyArtifact, sha256_hex
from decision.build import build_engine
from floor.daytypes import default_groups
from floor.forecast import honest_plan
from floor.scenario import Scenario, load_scenario
from floor.site import load_site
from rollout.shadow import SHADOW_SEEDS, counterfactual_mean
from stream.processor import StreamProcessor
from stream.worker import make_site
from twin.closed_loop import run_day
from twin.counterfactual import ObservedDay
from twin.day import DayDemand
from twin.groups import sample_day
from twin.spike import SPIKE_FACTOR, with_spike

SIMULATE_SEEDS = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class DayCheck:
    day: str
    report_p: float
    report_q: float
    simulate_q: tuple[float, ...]
    simulate_p_mean: float
    within: bool
    ranking_agrees: bool


def _days(scenario: Scenario, seed: int) -> list[tuple[str, DayDemand, int]]:
    """Four plain days spread over the site's day-type groups and two spiked ones. The groups
    are picked by their place in the site's range (the large site's 21 groups give 0, 5, 10, 16
    and spikes on 20 and 7, the days its figures were measured on), so any site has days."""
    groups = default_groups(scenario)
    share = groups.expected_share(0).mean(axis=0)
    last = groups.n_groups - 1
    out = []
    for group in sorted({round(q * last) for q in (0.0, 0.25, 0.5, 0.8)}):
        out.append((f"group {group}", sample_day(groups, group, scenario, seed=seed), group))
    for group, rank in ((last, 10), (round(0.35 * last), 3)):
        base = sample_day(groups, group, scenario, seed=seed + 1)
        rank = min(rank, share.size - 1)
        destination = int(np.argsort(-share, kind="stable")[rank])
        spiked = with_spike(base, destination, SPIKE_FACTOR, seed=seed)
        out.append((f"spike group {group} rank {rank}", spiked, group))
    return out


def _floor_events(scenario: Scenario, served: str, demand: DayDemand, seed: int) -> list[Envelope]:
    events: list[Envelope] = []
    run_day(build_engine(load_site(scenario), served), demand, seed=seed, emit=events.append)
    return events


def check_day(
    scenario: Scenario, label: str, demand: DayDemand, served: str, shadow: str, seed: int
) -> DayCheck:
    site = load_site(scenario)
    events = _floor_events(scenario, served, demand, seed)
    plan = honest_plan(default_groups(scenario), demand.day_start.date(), label)
    observed = ObservedDay.from_events(
        scenario, demand.day_start, plan, events, scenario.n_intervals - 1
    )
    engines = {"p": build_engine(site, served), "q": build_engine(site, shadow)}
    runs = counterfactual_mean(observed, engines, demand.day_start.date().toordinal(), SHADOW_SEEDS)
    simulated = {
        name: tuple(
            run_day(build_engine(site, name), demand, seed=s).kpis.recirculation_rate
            for s in SIMULATE_SEEDS
        )
        for name in (served, shadow)
    }
    q, p = (float(runs[x].recirculated.sum() / runs[x].first_inductions.sum()) for x in "qp")
    sim_q = simulated[shadow]
    mean_q, mean_p = float(np.mean(sim_q)), float(np.mean(simulated[served]))
    within = min(sim_q) <= q <= max(sim_q) or abs(q - mean_q) <= 0.1 * mean_q
    return DayCheck(label, p, q, sim_q, mean_p, within, (q < p) == (mean_q < mean_p))


def overhead(
    scenario: Scenario, demand: DayDemand, served: str, shadow_path: str, seed: int
) -> dict[str, float]:
    """Seconds the processor spends per interval, without and with one shadow."""
    events = _floor_events(scenario, served, demand, seed)
    groups = default_groups(scenario)
    opening = DayStarted(
        event_id="bench-day",
        event_time=demand.day_start,
        site_id=scenario.site_id,
        day_start=demand.day_start,
        day_type_group=int(
            np.argmin(
                [
                    np.abs(groups.expected_share(g) - demand.expected_share).sum()
                    for g in range(groups.n_groups)
                ]
            )
        ),
    )
    key = message_key(scenario.site_id)
    floor = [e for e in events if not isinstance(e, AllocationDecided)]
    records = [(TOPIC_FOR_EVENT[e.model_dump()["event_type"]].name, encode(e)) for e in floor]
    data = Path(shadow_path).read_bytes()
    artifact = PolicyArtifact("drmarl", sha256_hex(data), data, (scenario.name,))
    ref = PolicyRef(name="drmarl", sha256=artifact.sha256)
    timings: dict[str, float] = {}
    outputs: dict[str, list[Any]] = {}
    for mode in ("served alone", "with one shadow"):
        site = make_site(scenario, served, None, fetch=lambda _ref: artifact)
        processor = StreamProcessor({scenario.site_id: site})
        offsets: Counter[str] = Counter()
        if mode == "with one shadow":
            route = PolicyRoute.model_validate(
                {
                    "event_id": "bench-route",
                    "event_time": demand.day_start,
                    "site_id": scenario.site_id,
                    "revision": 1,
                    "serving": PolicyRef(name=served),
                    "shadows": [ref],
                    "action": "shadow",
                },
                strict=False,
            )
            processor.handle(CONTROL.name, key, encode(route), 0, 0)
        out = processor.handle(TOPIC_FOR_EVENT["day_started"].name, key, encode(opening), 0, 0)
        offsets[TOPIC_FOR_EVENT["day_started"].name] += 1
        t0 = time.perf_counter()
        for topic, value in records:
            out += processor.handle(topic, key, value, 0, offsets[topic])
            offsets[topic] += 1
        timings[mode] = (time.perf_counter() - t0) / scenario.n_intervals
        outputs[mode] = [r.value for r in out if r.topic == "chuteflow.allocations.v1"]
    same = [a.split(b'"route_revision"')[0] for a in outputs["served alone"]] == [
        a.split(b'"route_revision"')[0] for a in outputs["with one shadow"]
    ]
    return {
        "ms_per_interval_served_alone": 1e3 * timings["served alone"],
        "ms_per_interval_with_one_shadow": 1e3 * timings["with one shadow"],
        "ratio": timings["with one shadow"] / timings["served alone"],
        "allocations": float(len(outputs["served alone"])),
        "same_allocations": float(same),
    }


def bench_shadow(scenario_name: str, served: str, shadow: str, seed: int) -> dict[str, Any]:
    scenario = load_scenario(scenario_name)
    checks = [
        check_day(scenario, label, demand, served, shadow, seed)
        for label, demand, _ in _days(scenario, seed)
    ]
    _, demand, _ = _days(scenario, seed)[0]
    cost = overhead(scenario, demand, served, shadow, seed)
    return {"days": checks, "overhead": cost}


__all__ = ["DayCheck", "bench_shadow", "check_day", "overhead"]
