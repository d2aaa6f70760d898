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

import numpy as np

from decision.build import build_engine
from decision.engine import DecisionEngine
from evaluation.fanout import open_fanout
from evaluation.suites import with_drift
from floor.daytypes import default_groups
from floor.scenario import Scenario, load_scenario
from floor.seeds import Stream, derive
from floor.site import load_site
from twin.closed_loop import run_day
from twin.groups import sample_day

VALIDATION_DAYS_PER_GROUP = 3
VALIDATION_DRIFT = 0.5
TIE = 1e-4


def score_days(engine: DecisionEngine, scenario: Scenario, per_group: int) -> dict[str, float]:
    """Mean and worst-group recirculation rate of ``engine`` on the first ``per_group``
    validation days of every group, each as sampled and drifted (what the rule scores, and
    what ``chuteflow train --checkpoint rule`` scores a run's networks on)."""
    groups = default_groups(scenario)
    per_group_rates: list[float] = []
    rates: list[float] = []
    for g in range(groups.n_groups):
        mine = []
        for k in range(per_group):
            seed = derive(Stream.VALIDATION_DAY, g, k)
            day = sample_day(groups, g, scenario, seed=seed)
            for variant in (day, with_drift(day, VALIDATION_DRIFT, seed)):
                mine.append(run_day(engine, variant, seed=seed).kpis.recirculation_rate)
        rates += mine
        per_group_rates.append(float(np.mean(mine)))
    return {"mean": float(np.mean(rates)), "worst_group": float(np.max(per_group_rates))}


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
