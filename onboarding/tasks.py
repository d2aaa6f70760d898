"""The units onboarding fans out (``evaluation.fanout``): one training member, one day run.

Each task is a frozen dataclass of plain values (paths, names, seeds) and a module-level
function, so it pickles to any Ray worker, rebuilds exactly the same inputs there and returns
plain JSON-ready values. Every seed is in the task; nothing reads a global RNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from decision.build import build_engine
from evaluation.suites import GROUP_SUITES, build_day
from floor.daytypes import default_groups
from floor.scenario import load_scenario
from floor.site import load_site
from training.dqn import Trainer, finished_run, write_run
from training.selection import (
    RULE_CONCENTRATED,
    RULE_DRIFTED,
    RULE_KINDS,
    RULE_SAMPLED,
    rule_variant,
)
from training.settings import Settings
from twin.closed_loop import run_day
from twin.dayfile import read_day_csv
from twin.fit import GroupFit
from twin.groups import sample_day

FILE_SUITES = ("history", "validation")
"""Suites whose days are the site's own day files (held-out and validation weeks)."""


@dataclass(frozen=True)
class MemberJob:
    """One training run: its settings and the folder it writes (or already wrote) into."""

    name: str
    settings: Settings
    out: str


def finished_member(job: MemberJob) -> dict[str, object] | None:
    """The run already in ``job.out`` with exactly ``job.settings``
    (``training.dqn.finished_run``), as :func:`train_member` returns it, or None: what makes an
    interrupted onboarding resume from the last finished member."""
    run = finished_run(job.settings, Path(job.out))
    return None if run is None else {k: run[k] for k in ("onnx", "wall_seconds", "reused")}


def train_member(job: MemberJob) -> dict[str, object]:
    """Train (or reuse, :func:`finished_member`) one candidate; returns its ONNX path and
    training figures."""
    done = finished_member(job)
    if done is not None:
        return done
    trainer = Trainer(job.settings)
    result = trainer.train()
    path = write_run(result, job.settings, Path(job.out), trainer.scenario)
    return {"onnx": str(path), "wall_seconds": result.wall_seconds, "reused": False}


@dataclass(frozen=True)
class DayJob:
    """One policy on one day of a suite, rebuilt from its coordinates."""

    site: str
    """The site file in the bundle (its groups and guardrails sit beside it)."""
    policy: str
    """A built-in policy name or an ONNX path."""
    label: str
    """The policy's name in the tables."""
    suite: str
    """A group-based suite (``evaluation.suites.GROUP_SUITES``), a file suite
    (:data:`FILE_SUITES`) or one of the rule's validation kinds."""
    seed: int
    """The day's sampling seed and the twin's seed."""
    index: int
    group: int = -1
    file: str | None = None
    """The day file of a file suite."""


def run_day_job(job: DayJob) -> dict[str, object]:
    """KPIs of one day run, with its coordinates (a row of ``evaluation.report.summarize``)."""
    scenario = load_scenario(job.site)
    groups = default_groups(scenario)
    if job.suite in FILE_SUITES:
        assert job.file is not None
        demand = read_day_csv(job.file, scenario)
        group, kind = GroupFit(groups).nearest(demand.interval_arrivals()), "nearest"
    elif job.suite in RULE_KINDS:
        demand = sample_day(groups, job.group, scenario, seed=job.seed)
        demand = rule_variant(demand, job.suite, job.seed)
        group, kind = job.group, "group"
    elif job.suite in GROUP_SUITES:
        built = build_day(scenario, groups, job.suite, job.group, job.seed)
        demand, group, kind = built.demand, built.group, built.group_kind
    else:
        raise ValueError(f"unknown suite {job.suite!r}")
    engine = build_engine(load_site(scenario), job.policy)
    run = run_day(engine, demand, seed=job.seed)
    return {
        "policy": job.label,
        "group": group,
        "group_kind": kind,
        "seed": job.seed,
        "day_kind": job.suite,
        "index": job.index,
        "day": Path(job.file).name if job.file else None,
        "label": demand.label,
        **run.kpis.to_dict(),
    }


__all__ = [
    "FILE_SUITES",
    "RULE_CONCENTRATED",
    "RULE_DRIFTED",
    "RULE_KINDS",
    "RULE_SAMPLED",
    "DayJob",
    "MemberJob",
    "run_day_job",
    "train_member",
]
