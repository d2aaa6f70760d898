"""Pick the shipped policy among training seeds, by the rule in ``docs/policy-selection.md``.

Validation days are every group x 3 days of the ``VALIDATION_DAY`` seed stream, as sampled and
with 50% of destinations' volumes reassigned; evaluation seeds are never touched. The score is
the mean recirculation rate under the honest plan; the lowest wins, ties (0.01 points) to the
lower worst group.

    python -m training.selection --scenario small out/issue10/small/*/*.onnx \
        decision/policies/marl-small.onnx
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from decision.build import build_engine
from decision.engine import DecisionEngine
from evaluation.fanout import open_fanout
from evaluation.suites import CONCENTRATION_SHARE, with_drift
from floor.daytypes import default_groups
from floor.scenario import Scenario, load_scenario
from floor.seeds import Stream, derive
from floor.site import load_site
from twin.closed_loop import run_day
from twin.day import DayDemand
from twin.groups import sample_day
from twin.spike import concentrated

VALIDATION_DAYS_PER_GROUP = 3
VALIDATION_DRIFT = 0.5
TIE = 1e-4


RULE_SAMPLED = "rule-sampled"
RULE_DRIFTED = "rule-drifted"
RULE_CONCENTRATED = "rule-concentrated"
"""The rule's kinds of validation day: a group's sample as drawn, the same day with
``VALIDATION_DRIFT`` of destinations' volumes reassigned, and (onboarding, the amendments of
2026-12-02 and 2026-12-03) the same day with one big destination grown to
``evaluation.suites.CONCENTRATION_SHARE`` of the day, plan unchanged."""
RULE_KINDS = (RULE_SAMPLED, RULE_DRIFTED, RULE_CONCENTRATED)


def rule_variant(day: DayDemand, kind: str, seed: int) -> DayDemand:
    """A sampled validation day made into the rule's ``kind`` (drawn by the day's seed)."""
    if kind == RULE_DRIFTED:
        return with_drift(day, VALIDATION_DRIFT, seed)
    if kind == RULE_CONCENTRATED:
        return concentrated(day, CONCENTRATION_SHARE, seed)
    if kind != RULE_SAMPLED:
        raise ValueError(f"unknown kind of validation day {kind!r}")
    return day


def rule_day(scenario: Scenario, group: int, k: int, kind: str) -> tuple[DayDemand, int]:
    """Day ``k`` of ``group`` of the rule's ``kind``, and its seed (the day's and the twin's)."""
    seed = derive(Stream.VALIDATION_DAY, group, k)
    day = sample_day(default_groups(scenario), group, scenario, seed=seed)
    return rule_variant(day, kind, seed), seed


def rule_rows(
    engine: DecisionEngine,
    scenario: Scenario,
    per_group: int,
    kinds: Sequence[str] = (RULE_SAMPLED, RULE_DRIFTED),
) -> list[dict[str, Any]]:
    """``engine`` on the first ``per_group`` validation days of every group, each of
    ``kinds``: one row per day (``day_kind``, ``group``, ``recirculation_rate``), as
    ``training.pregate.score`` reads them."""
    rows: list[dict[str, Any]] = []
    for g in range(default_groups(scenario).n_groups):
        for k in range(per_group):
            for kind in kinds:
                day, seed = rule_day(scenario, g, k, kind)
                rate = run_day(engine, day, seed=seed).kpis.recirculation_rate
                rows.append({"day_kind": kind, "group": g, "recirculation_rate": rate})
    return rows


def score_days(engine: DecisionEngine, scenario: Scenario, per_group: int) -> dict[str, float]:
    """Mean and worst-group recirculation rate of ``engine`` on the first ``per_group``
    validation days of every group, each as sampled and drifted (what the rule scores, and
    what ``chuteflow train --checkpoint rule`` scores a run's networks on)."""
    per_group_rates: dict[int, list[float]] = {}
    rates: list[float] = []
    for row in rule_rows(engine, scenario, per_group):
        rates.append(row["recirculation_rate"])
        per_group_rates.setdefault(row["group"], []).append(row["recirculation_rate"])
    worst = max(float(np.mean(v)) for v in per_group_rates.values())
    return {"mean": float(np.mean(rates)), "worst_group": worst}


def validation_score(scenario_name: str, policy: str) -> dict[str, float]:
    """Mean and worst-group recirculation rate of ``policy`` on the validation days."""
    scenario = load_scenario(scenario_name)
    engine = build_engine(load_site(scenario), policy)  # start_day resets it for each day
    return score_days(engine, scenario, VALIDATION_DAYS_PER_GROUP)


def _score(job: tuple[str, str]) -> tuple[str, dict[str, float]]:
    return job[1], validation_score(*job)


def pick(scores: dict[str, dict[str, float]]) -> str:
    """The lowest mean; within :data:`TIE`, the lower worst group."""
    best = min(s["mean"] for s in scores.values())
    close = [p for p, s in scores.items() if s["mean"] <= best + TIE]
    return min(close, key=lambda p: scores[p]["worst_group"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--workers", type=int, default=2, help="local Ray CPUs (1: serial)")
    parser.add_argument("--ray", default=None, help="an existing Ray cluster's address")
    parser.add_argument("policies", nargs="+")
    args = parser.parse_args(argv)
    jobs = [(args.scenario, p) for p in args.policies]
    with open_fanout(args.ray, args.workers) as fanout:
        scores = dict(fanout.map(_score, jobs))
    by_algo: dict[str, dict[str, dict[str, float]]] = {}
    for policy, score in scores.items():
        by_algo.setdefault(Path(policy).stem.rsplit("-", 1)[0], {})[policy] = score
        print(
            f"{policy:60s} mean {100 * score['mean']:6.2f}%  worst group "
            f"{100 * score['worst_group']:6.2f}%"
        )
    picked = {algo: pick(group) for algo, group in by_algo.items()}
    print(json.dumps(picked, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
