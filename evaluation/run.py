"""Run policies over day-type groups and seeds on the twin, in parallel processes.

Every run is independent and seeded, so the table is the same whatever the worker count.
Evaluation seeds start at ``EVAL_SEED_BASE`` so they never coincide with training seeds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from decision.build import build_engine
from floor.daytypes import default_groups
from floor.scenario import load_scenario
from floor.seeds import EVALUATION_BASE, evaluation_seed
from floor.site import load_site
from twin.closed_loop import run_day
from twin.groups import sample_day
from twin.spike import with_shifted_mix, with_spike

EVAL_SEED_BASE = EVALUATION_BASE
"""Evaluation days are sampled with seeds from here on (``floor/seeds.py``); training seeds are
derived from named streams and never meet them."""
SPIKE_FACTOR = 4.0
"""Stress days: one destination at four times its usual volume."""
SHIFT_FRACTION = 0.3
"""Out-of-distribution days: 30% of destinations swap volumes."""


@dataclass(frozen=True)
class RunSpec:
    """One day: a policy on a sample of one group."""

    scenario: str
    policy: str
    group: int
    seed: int
    guardrails: str
    day_kind: str = "group"
    """``group``: a sample of the group; ``spike``: plus one destination at 4x its volume;
    ``shifted``: with 30% of destinations' volumes shuffled (outside every group)."""


def run_one(spec: RunSpec) -> dict[str, object]:
    """KPIs of one day run, with the run's coordinates."""
    scenario = load_scenario(spec.scenario)
    groups = default_groups(scenario)
    demand = sample_day(groups, spec.group, scenario, seed=spec.seed)
    if spec.day_kind == "spike":
        # the spiking destination is drawn among the top half: a customer big enough to matter
        rank = spec.seed % max(1, scenario.n_destinations // 2)
        destination = int(np.argsort(-demand.expected_share.mean(axis=0), kind="stable")[rank])
        demand = with_spike(demand, destination, SPIKE_FACTOR, seed=spec.seed)
    elif spec.day_kind == "shifted":
        demand = with_shifted_mix(demand, SHIFT_FRACTION, seed=spec.seed)
    elif spec.day_kind != "group":
        raise ValueError(f"unknown day kind {spec.day_kind!r}")
    engine = build_engine(load_site(scenario, spec.guardrails), spec.policy)
    run = run_day(engine, demand, seed=spec.seed)
    return {
        "policy": engine.policy.name,
        "group": spec.group,
        "seed": spec.seed,
        "day_kind": spec.day_kind,
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
    day_kind: str = "group",
) -> list[RunSpec]:
    return [
        RunSpec(scenario, policy, group, evaluation_seed(seed), guardrails, day_kind)
        for policy in policies
        for group in groups
        for seed in range(seeds)
    ]


__all__ = ["EVAL_SEED_BASE", "RunSpec", "run_all", "run_one", "specs_for"]
