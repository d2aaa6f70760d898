"""Benchmarks on the twin: how fast it simulates a day (under a plain static plan), and what
one decision cycle costs on the floor states of a real day.

Training simulates thousands of site-days (one step under several demand groups per
decision), so the twin's speed bounds training time. The benchmark fixes everything that is
not the twin: a static proportional allocation, a synthetic Poisson day built before the clock
starts, no event emission.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import numpy.typing as npt

from decision.artifacts import PolicyArtifact
from decision.state import IDLE
from floor.scenario import Scenario, load_scenario
from twin.day import DayDemand
from twin.sim import SortationTwin

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

ZIPF_EXPONENT = 1.0
"""Destination mix of the synthetic day: on 120 destinations the top 20% take ~70% of the
volume, the 7:2:1-style skew of public sortation benchmarks."""
FLAT_FRACTION = 0.5
"""Part of each destination's volume spread evenly over the day; the rest is one bump at a
destination-specific time, so a static plan is not trivially right all day."""


def synthetic_day(scenario: Scenario, seed: int) -> DayDemand:
    """A typical day at ``mean_packages_per_hour``: Zipf mix, per-destination peak, Poisson.

    Self-contained (no history or groups needed) so the benchmark and the twin's tests do not
    depend on the demand model; ``expected_share`` is the exact rate the day was drawn from.
    """
    rng = np.random.default_rng(seed)
    n_d, n_i, t_i = scenario.n_destinations, scenario.n_intervals, scenario.ticks_per_interval
    mix = 1.0 / np.arange(1, n_d + 1) ** ZIPF_EXPONENT
    mix = rng.permutation(mix / mix.sum())
    x = (np.arange(n_i) + 0.5) / n_i
    peak = rng.uniform(0.15, 0.85, n_d)
    width = rng.uniform(0.1, 0.25, n_d)
    bump = np.exp(-0.5 * ((x[:, None] - peak[None, :]) / width[None, :]) ** 2)
    shape = FLAT_FRACTION / n_i + (1.0 - FLAT_FRACTION) * bump / bump.sum(axis=0)
    rate = scenario.mean_packages_per_hour * scenario.day_hours * shape * mix  # [n_i, D]
    share = rate / rate.sum(axis=1, keepdims=True)
    per_tick = np.repeat(rate / t_i, t_i, axis=0)
    arrivals = rng.poisson(per_tick).astype(np.int64)
    return DayDemand(
        scenario=scenario,
        arrivals=arrivals,
        expected_share=share.astype(np.float64),
        day_start=scenario.day_start,
        label=f"synthetic seed {seed}",
    )


def proportional_owner(scenario: Scenario, share: FloatArray) -> IntArray:
    """[C] a static chute map with chute counts proportional to ``share``.

    Every destination with volume gets one chute first while chutes last (a destination with
    none recirculates everything), the rest goes by largest remainder of the share.
    """
    n_c, n_d = scenario.eject_chutes, scenario.n_destinations
    share = np.asarray(share, dtype=np.float64)
    share = share / share.sum()
    counts = np.zeros(n_d, dtype=np.int64)
    by_volume = np.argsort(-share, kind="stable")
    floor_each = min(n_c, int((share > 0).sum()))
    counts[by_volume[:floor_each]] = 1
    rest = n_c - floor_each
    if rest:
        target = share * n_c - counts
        target = np.maximum(target, 0.0)
        if target.sum() > 0:
            target *= rest / target.sum()
            extra = np.floor(target).astype(np.int64)
            short = rest - int(extra.sum())
            extra[np.argsort(-(target - extra), kind="stable")[:short]] += 1
            counts += extra
    owner = np.full(n_c, IDLE, dtype=np.int64)
    assigned = np.repeat(np.arange(n_d, dtype=np.int64), counts)
    owner[: assigned.size] = assigned
    return owner


def bench_twin(scenario_name: str = "large", days: int = 20, seed: int = 0) -> dict[str, Any]:
    """Simulate ``days`` days under a fixed proportional plan; report the speed.

    Only ``SortationTwin`` construction and ``run_interval`` calls are timed: the day and the
    plan are built first, as training would have them ready.
    """
    if days < 1:
        raise ValueError("days must be >= 1")
    scenario = load_scenario(scenario_name)
    demands = [synthetic_day(scenario, seed + day) for day in range(days)]
    owners = [
        proportional_owner(scenario, demand.expected_share.mean(axis=0)) for demand in demands
    ]
    recirculation = []
    started = time.perf_counter()
    for day, (demand, owner) in enumerate(zip(demands, owners, strict=True)):
        twin = SortationTwin(scenario, demand, seed=seed + day)
        while not twin.done:
            twin.run_interval(owner)
        recirculation.append(twin.kpis().recirculation_rate)
    elapsed = time.perf_counter() - started
    return {
        "scenario": scenario.name,
        "days": days,
        "days_per_second": days / elapsed,
        "seconds_per_day": elapsed / days,
        "ticks_per_second": days * scenario.n_ticks / elapsed,
        "mean_recirculation_rate": float(np.mean(recirculation)),
    }


def bench_decision(
    scenario_name: str = "large",
    days: int = 3,
    seed: int = 0,
    policy: str | PolicyArtifact = "proportional",
) -> dict[str, object]:
    """The cost of one full decision cycle on a realistic floor (``chuteflow bench decision``).

    States come from the twin running sampled days under ``policy`` (anything
    :func:`~decision.build.build_engine` takes), so the projection sees the chute churn,
    out-of-service chutes and move caps of a real day under the values that policy gives; the
    timer covers the plan update, features, policy, projection, chute map and validation. The
    p99 of each part is reported too: the slowest cycles are where a cut pays. ``cpu_*`` is
    the same cycle in CPU time of the deciding thread (the engine's ``timings_ms["cpu"]``):
    on a loaded machine wall time adds the waits for a core, CPU time does not.
    """
    from decision.build import build_engine
    from floor.daytypes import default_groups
    from floor.site import load_site
    from twin.closed_loop import run_day
    from twin.groups import sample_day

    scenario = load_scenario(scenario_name)
    groups = default_groups(scenario)
    engine = build_engine(load_site(scenario), policy)
    parts: dict[str, list[float]] = {}
    optimal = 0
    for day in range(days):
        group = day % groups.probs.shape[0]
        demand = sample_day(groups, group, scenario, seed=seed + day)
        run = run_day(engine, demand, seed=seed + day)
        for decision in run.decisions:
            for part, ms in decision.timings_ms.items():
                parts.setdefault(part, []).append(ms)
        optimal += sum(d.proven_optimal for d in run.decisions)
    samples = np.asarray(parts["total"])
    cpu = np.asarray(parts["cpu"])
    return {
        "scenario": scenario.name,
        "intervals": int(samples.size),
        "p50_ms": round(float(np.percentile(samples, 50)), 3),
        "p99_ms": round(float(np.percentile(samples, 99)), 3),
        "max_ms": round(float(samples.max()), 3),
        "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 3),
        "cpu_p99_ms": round(float(np.percentile(cpu, 99)), 3),
        "optimal_fraction": round(optimal / samples.size, 4),
        **{
            f"p99_{part}_ms": round(float(np.percentile(ms, 99)), 3)
            for part, ms in parts.items()
            if part not in ("total", "cpu")
        },
    }
