"""``chuteflow bench decision``: the cost of one full decision cycle on a realistic floor.

States come from the twin running sampled days under the proportional policy, so the
projection sees the chute churn, out-of-service chutes and move caps of a real day; the
timer covers features, policy, projection, chute map and validation.
"""

from __future__ import annotations

import numpy as np


def bench_decision(scenario_name: str = "large", days: int = 3, seed: int = 0) -> dict[str, object]:
    from decision.guardrails import load_guardrails
    from decision.policies import make_policy
    from twin.closed_loop import make_engine, physics_of, run_day
    from twin.groups import default_groups, sample_day
    from twin.scenario import load_scenario

    scenario = load_scenario(scenario_name)
    groups = default_groups(scenario)
    engine = make_engine(
        scenario,
        make_policy("proportional", physics_of(scenario)),
        load_guardrails(scenario.name),
    )
    totals: list[float] = []
    optimal = 0
    for day in range(days):
        group = day % groups.probs.shape[0]
        demand = sample_day(groups, group, scenario, seed=seed + day)
        run = run_day(engine, demand, seed=seed + day)
        totals += [d.timings_ms["total"] for d in run.decisions]
        optimal += sum(d.proven_optimal for d in run.decisions)
    samples = np.asarray(totals)
    return {
        "scenario": scenario.name,
        "intervals": int(samples.size),
        "p50_ms": round(float(np.percentile(samples, 50)), 3),
        "p99_ms": round(float(np.percentile(samples, 99)), 3),
        "max_ms": round(float(samples.max()), 3),
        "optimal_fraction": round(optimal / samples.size, 4),
    }
