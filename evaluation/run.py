"""Run policies over the days of evaluation suites on the twin, fanned out (``evaluation.fanout``).

Every run is independent and seeded, so the table is the same whatever the worker count and
wherever a run went (one process, a local Ray, a cluster).
Evaluation seeds start at ``EVAL_SEED_BASE`` so they never coincide with training seeds.
The days themselves are the suites' (``evaluation/suites.py``); a ``RunSpec`` carries a day's
coordinates, so a worker process rebuilds exactly the day the parent listed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from decision.build import build_engine
from evaluation.fanout import FanOut, open_fanout
from evaluation.suites import (
    GROUP_SUITES,
    SHIFT_FRACTION,
    SPIKE_FACTOR,
    SuiteError,
    SuiteOptions,
    build_day,
    suite_days,
)
from floor.daytypes import default_groups
from floor.scenario import load_scenario
from floor.seeds import EVALUATION_BASE, evaluation_seed
from floor.site import load_site
from twin.closed_loop import run_day

EVAL_SEED_BASE = EVALUATION_BASE
"""Evaluation days are sampled with seeds from here on (``floor/seeds.py``); training seeds are
derived from named streams and never meet them."""
ORACLE_SUFFIX = " (oracle plan)"
"""Appended to a policy's name in the rows of its oracle-plan reference run."""


@dataclass(frozen=True)
class RunSpec:
    """One day: a policy on a sample of one group."""

    scenario: str
    policy: str
    group: int
    seed: int
    guardrails: str
    day_kind: str = "group"
    """The suite (``evaluation.suites.SUITES``): ``group``: a sample of the group; ``spike``:
    plus one destination at 4x its volume; ``concentration``: one big destination grown to a
    fifth of the day; ``shifted``: with 30% of destinations' volumes shuffled (outside every
    group); ``history``, ``drift-*``, ``other``: see the suites."""
    day: str | None = None
    """ISO date of a ``history`` or ``other`` day (``group`` is then found when it runs)."""
    history_seed: int | None = None
    """History seed of a ``history`` or ``other`` day."""
    index: int = 0
    """The day's index in its suite."""
    oracle_plan: bool = False
    """Hand the policy the day's own ``expected_share`` (the true group's share, or a real
    day's hindsight nearest group) instead of the honest plan: the reference row."""


SHIPPED_DIR = Path(__file__).resolve().parent.parent / "decision" / "policies"


def policy_label(policy: str, name: str) -> str:
    """The policy's name; an ONNX file outside the shipped folder also gets its folder's name,
    so several training runs of one algorithm stay apart in one table."""
    path = Path(policy)
    if path.suffix == ".onnx" and path.resolve().parent != SHIPPED_DIR:
        return f"{name} ({path.parent.name})"
    return name


def run_one(spec: RunSpec) -> dict[str, object]:
    """KPIs of one day run, with the run's coordinates."""
    scenario = load_scenario(spec.scenario)
    groups = default_groups(scenario)
    try:
        built = build_day(
            scenario, groups, spec.day_kind, spec.group, spec.seed, spec.day, spec.history_seed
        )
    except SuiteError as error:
        raise ValueError(f"unknown day kind {spec.day_kind!r}: {error}") from None
    engine = build_engine(load_site(scenario, spec.guardrails), spec.policy)
    run = run_day(engine, built.demand, seed=spec.seed, oracle_plan=spec.oracle_plan)
    name = policy_label(spec.policy, engine.policy.name) + (
        ORACLE_SUFFIX if spec.oracle_plan else ""
    )
    return {
        "policy": name,
        "group": built.group,
        "group_kind": built.group_kind,
        "seed": spec.seed,
        "day_kind": spec.day_kind,
        "index": spec.index,
        "day": spec.day,
        "history_seed": spec.history_seed,
        "oracle_plan": spec.oracle_plan,
        "label": built.demand.label,
        **run.kpis.to_dict(),
    }


def run_all(
    specs: Sequence[RunSpec],
    workers: int | None = None,
    on_done: Callable[[int, int], None] | None = None,
    *,
    fanout: FanOut | None = None,
    ray: str | None = None,
) -> list[dict[str, object]]:
    """Run every spec; rows come back in the order of ``specs``. On ``fanout`` when given,
    else on the one ``open_fanout(ray, workers)`` opens for this call."""
    if fanout is not None:
        return fanout.map(run_one, specs, on_done)
    with open_fanout(ray, workers) as opened:
        return opened.map(run_one, specs, on_done)


def specs_for(
    scenario: str,
    policies: Sequence[str],
    groups: Sequence[int],
    seeds: int,
    guardrails: str,
    day_kind: str = "group",
) -> list[RunSpec]:
    """Specs of a group-based suite (``group``, ``spike``, ``concentration``, ``shifted``,
    ``drift-*``): every policy on ``seeds`` days of each group."""
    if day_kind not in GROUP_SUITES:
        raise ValueError(f"{day_kind!r} is not a group-based suite; use suite_specs")
    return [
        RunSpec(
            scenario,
            policy,
            group,
            evaluation_seed(seed),
            guardrails,
            day_kind,
            index=gi * seeds + seed,
        )
        for policy in policies
        for gi, group in enumerate(groups)
        for seed in range(seeds)
    ]


def suite_specs(
    scenario: str,
    policies: Sequence[str],
    suite: str,
    options: SuiteOptions,
    guardrails: str,
    oracle_plan: bool = False,
) -> list[RunSpec]:
    """Every policy on every day of ``suite``; with ``oracle_plan``, each policy is followed by
    its oracle-plan reference run on the same days."""
    days = suite_days(suite, default_groups(load_scenario(scenario)), options)
    variants = [False, True] if oracle_plan else [False]
    return [
        RunSpec(
            scenario,
            policy,
            day.group,
            day.seed,
            guardrails,
            suite,
            day=day.day,
            history_seed=day.history_seed,
            index=day.index,
            oracle_plan=oracle,
        )
        for policy in policies
        for oracle in variants
        for day in days
    ]


__all__ = [
    "EVAL_SEED_BASE",
    "ORACLE_SUFFIX",
    "SHIFT_FRACTION",
    "SPIKE_FACTOR",
    "RunSpec",
    "run_all",
    "run_one",
    "specs_for",
    "suite_specs",
]
