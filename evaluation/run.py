"""Run policies over day-type groups and seeds on the twin, in parallel processes.

Every run is independent and seeded, so the table is the same whatever the worker count.
Evaluation seeds start at ``EVAL_SEED_BASE`` so they never coincide with training seeds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from decision.guardrails import load_guardrails
from decision.policies import make_policy
from twin.closed_loop import make_engine, physics_of, run_day
from twin.groups import default_groups, sample_day
from twin.scenario import load_scenario

EVAL_SEED_BASE = 100_000
"""Evaluation days are sampled with seeds from here on; training uses smaller seeds."""


@dataclass(frozen=True)
class RunSpec:
    """One day: a policy on a sample of one group."""

    scenario: str
    policy: str
    group: int
    seed: int
    guardrails: str


def run_one(spec: RunSpec) -> dict[str, object]:
    """KPIs of one day run, with the run's coordinates."""
    scenario = load_scenario(spec.scenario)
    groups = default_groups(scenario)
    demand = sample_day(groups, spec.group, scenario, seed=spec.seed)
    policy = make_policy(spec.policy, physics_of(scenario))
    engine = make_engine(scenario, policy, load_guardrails(spec.guardrails))
    run = run_day(engine, demand, seed=spec.seed)
    return {
        "policy": policy.name if spec.policy in ("static", "proportional", "lookahead") else spec.policy,
        "group": spec.group,
        "seed": spec.seed,
        **run.kpis.to_dict(),
    }


def run_all(
    specs: Sequence[RunSpec],
    workers: int | None = None,
    on_done: Callable[[int, int], None] | None = None,
) -> list[dict[str, object]]:
    """Run every spec; rows come back in the order of ``specs``."""
    workers = workers or min(2, os.cpu_count() or 1)
    if workers <= 1:
        rows = []
        for index, spec in enumerate(specs):
            rows.append(run_one(spec))
            if on_done is not None:
                on_done(index + 1, len(specs))
        return rows
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = []
        for index, row in enumerate(pool.map(run_one, specs, chunksize=1)):
            results.append(row)
            if on_done is not None:
                on_done(index + 1, len(specs))
    return results


def specs_for(
    scenario: str,
    policies: Sequence[str],
    groups: Sequence[int],
    seeds: int,
    guardrails: str,
) -> list[RunSpec]:
    return [
        RunSpec(scenario, policy, group, EVAL_SEED_BASE + seed, guardrails)
        for policy in policies
        for group in groups
        for seed in range(seeds)
    ]


__all__ = ["EVAL_SEED_BASE", "RunSpec", "run_all", "run_one", "specs_for"]
