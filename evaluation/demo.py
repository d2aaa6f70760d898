"""``chuteflow demo``: the main job on an embedded default.

A large-site day of the busiest day type, with one mid-sized destination ordering four times
its usual volume, run under the traditional static plan, the proportional heuristic and the
perfect-information lookahead (plus every policy shipped in ``decision/policies/``). Prints
the table and writes the plots a sortation engineer would look at first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from decision.guardrails import load_guardrails
from decision.policies import BUILTIN_POLICIES, make_policy
from evaluation.plots import spike_day_allocation
from twin.closed_loop import make_engine, physics_of, run_day
from twin.groups import default_groups, sample_day
from twin.scenario import load_scenario
from twin.spike import with_spike

SHIPPED_POLICIES = Path(__file__).resolve().parent.parent / "decision" / "policies"
SPIKE_RANK = 10
"""The spike hits the 11th-largest destination: big enough to matter, small enough that the
static plan gave it few chutes."""
SPIKE_FACTOR = 4.0


def run_demo(
    out: Path, seed: int = 7, scenario_name: str = "large"
) -> dict[str, dict[str, int | float]]:
    scenario = load_scenario(scenario_name)
    groups = default_groups(scenario)
    busiest = int(np.argmax(groups.volume_mean))
    base = sample_day(groups, busiest, scenario, seed=seed)
    share = base.expected_share.mean(axis=0)
    destination = int(np.argsort(-share, kind="stable")[SPIKE_RANK])
    demand = with_spike(base, destination, SPIKE_FACTOR, seed=seed)
    guardrails = load_guardrails(scenario.name)
    policies: list[str] = list(BUILTIN_POLICIES)
    policies += sorted(str(p) for p in SHIPPED_POLICIES.glob(f"*{scenario.name}*.onnx"))

    results: dict[str, dict[str, int | float]] = {}
    chutes: dict[str, np.ndarray] = {}
    for name in policies:
        policy = make_policy(name, physics_of(scenario))
        run = run_day(make_engine(scenario, policy, guardrails), demand, seed=seed)
        results[policy.name] = run.kpis.to_dict()
        chutes[policy.name] = run.counts_over_day()[:, destination]

    out.mkdir(parents=True, exist_ok=True)
    spike_name = scenario.destinations[destination]
    print(f"{scenario.name} site, {demand.label}: {demand.total:,} packages")
    header = (
        f"{'policy':14s} {'recirc rate':>11s} {'recirc amount':>13s} {'throughput/h':>12s} "
        f"{'unsorted':>9s} {'moves':>6s}"
    )
    print(header)
    for name, kpis in results.items():
        print(
            f"{name:14s} {100 * float(kpis['recirculation_rate']):10.2f}% "
            f"{kpis['recirculation_amount']:>13,} {float(kpis['throughput_per_hour']):12,.0f} "
            f"{kpis['unsorted']:>9,} {kpis['chute_moves']:>6,}"
        )
    plot = spike_day_allocation(
        chutes,
        demand.interval_arrivals()[:, destination],
        scenario.interval_minutes,
        spike_name,
        out / "spike_day_allocation.png",
    )
    print(f"plot: {plot}")
    return results
