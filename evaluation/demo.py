"""``chuteflow demo``: the main job on an embedded default, and the spike-day study it shows.

A large-site day of the busiest day type, with one mid-sized destination ordering four times
its usual volume, run under the traditional static plan, the proportional heuristic and the
perfect-information lookahead, plus every policy shipped in ``decision/policies/``. Prints
the table and writes the plot a sortation engineer looks at first: how many chutes the
spiking destination held over the day under each policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from decision.build import build_engine
from decision.policies import BUILTIN_POLICIES
from evaluation.plots import spike_day_allocation
from floor.scenario import Scenario
from floor.site import load_site
from twin.closed_loop import run_day
from twin.day import DayDemand
from twin.spike import spike_day

SHIPPED_POLICIES = Path(__file__).resolve().parent.parent / "decision" / "policies"


@dataclass(frozen=True)
class SpikeStudy:
    """One spike day run under several policies."""

    scenario: Scenario
    demand: DayDemand
    destination: int
    kpis: dict[str, dict[str, int | float]]
    chutes: dict[str, npt.NDArray[np.int64]]
    """Per policy: chutes the spiking destination held in each interval."""

    def plot(self, path: Path) -> Path:
        return spike_day_allocation(
            self.chutes,
            self.demand.interval_arrivals()[:, self.destination],
            self.scenario.interval_minutes,
            self.scenario.destinations[self.destination],
            path,
        )


def shipped_policies(scenario_name: str) -> list[str]:
    """ONNX policies shipped in the repo for this scenario."""
    return sorted(str(p) for p in SHIPPED_POLICIES.glob(f"*-{scenario_name}.onnx"))


def spike_study(scenario_name: str, policies: Sequence[str], seed: int) -> SpikeStudy:
    scenario, _, demand, destination = spike_day(scenario_name, seed)
    site = load_site(scenario)
    kpis: dict[str, dict[str, int | float]] = {}
    chutes: dict[str, npt.NDArray[np.int64]] = {}
    for name in policies:
        engine = build_engine(site, name)
        run = run_day(engine, demand, seed=seed)
        kpis[engine.policy.name] = run.kpis.to_dict()
        chutes[engine.policy.name] = run.counts_over_day()[:, destination]
    return SpikeStudy(scenario, demand, destination, kpis, chutes)


def run_demo(
    out: Path, seed: int = 7, scenario_name: str = "large"
) -> dict[str, dict[str, int | float]]:
    policies = [*BUILTIN_POLICIES, *shipped_policies(scenario_name)]
    study = spike_study(scenario_name, policies, seed)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{study.scenario.name} site, {study.demand.label}: {study.demand.total:,} packages")
    print(
        f"{'policy':18s} {'recirc rate':>11s} {'recirc amount':>13s} {'throughput/h':>12s} "
        f"{'unsorted':>9s} {'moves':>6s}"
    )
    for name, kpis in study.kpis.items():
        print(
            f"{name:18s} {100 * float(kpis['recirculation_rate']):10.2f}% "
            f"{kpis['recirculation_amount']:>13,} {float(kpis['throughput_per_hour']):12,.0f} "
            f"{kpis['unsorted']:>9,} {kpis['chute_moves']:>6,}"
        )
    print(f"plot: {study.plot(out / 'spike_day_allocation.png')}")
    return study.kpis
