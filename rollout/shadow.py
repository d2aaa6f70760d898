"""Shadow comparison on live streams: each policy's own counterfactual day on the floor's
arrivals, beside what the floor reported.

Why a counterfactual twin and not the shadow decisions alone: a shadow decision is made on the
live state, which the *served* policy shaped; it says what the candidate would do next, not how
its day would have gone. So every policy of the day (the served one included) runs its own
closed loop on the twin (``twin/counterfactual.py``), fed with the first inductions and chute
outages the floor reported, with one seed for all (common random numbers): apples to apples.
The served policy's twin run beside the floor's own counts is the twin's error, shown with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from contracts.control import PolicyRef
from decision.artifacts import PolicyArtifact
from decision.build import build_engine
from decision.engine import DecisionEngine
from floor.daytypes import default_groups
from floor.forecast import honest_plan
from floor.scenario import Scenario
from floor.seeds import Stream, derive
from floor.site import load_site
from rollout.observe import SiteDay, policy_of
from twin.counterfactual import CounterfactualRun, ObservedDay, run_counterfactual

IntArray = npt.NDArray[np.int64]
Fetch = Callable[[PolicyRef], PolicyArtifact]


@dataclass(frozen=True)
class KpiRow:
    """One row of the report: a policy's twin run, or the floor, over intervals ``0..k``."""

    label: str
    source: str
    """``floor`` (what the floor reported) or ``twin`` (counterfactual)."""
    inducted: int
    recirculated: int
    recirculation_rate: float
    recirculation_amount: int
    throughput_per_hour: float
    chute_moves: int | None
    unsorted: int

    @classmethod
    def of(
        cls,
        label: str,
        source: str,
        hours: float,
        *,
        inducted: int,
        recirculated: int,
        amount: int,
        sorted_: int,
        moves: int | None,
    ) -> KpiRow:
        return cls(
            label=label,
            source=source,
            inducted=inducted,
            recirculated=recirculated,
            recirculation_rate=recirculated / inducted if inducted else 0.0,
            recirculation_amount=amount,
            throughput_per_hour=sorted_ / hours if hours > 0 else 0.0,
            chute_moves=moves,
            unsorted=inducted - sorted_,
        )


@dataclass(frozen=True)
class ShadowComparison:
    """The report's content: rows per policy and the floor, and the per-interval series."""

    site_id: str
    day_key: str
    closed_through: int
    complete: bool
    served: list[str]
    """Labels of the policies that served intervals of the day, most intervals first."""
    rows: list[KpiRow]
    runs: dict[str, CounterfactualRun]
    floor_recirculated: IntArray
    floor_inducted: IntArray
    twin_error: float | None
    """Served policy's twin rate minus the floor's rate (one served policy all day only)."""


SHADOW_SEEDS = 5
"""Container-fill seeds the counterfactual is averaged over: the floor's fills are not
observable, and one draw of them moves a low rate by a tenth of itself (``bench shadow``)."""


def counterfactual_mean(
    observed: ObservedDay, engines: dict[str, DecisionEngine], day: int, seeds: int
) -> dict[str, CounterfactualRun]:
    """Each policy's counterfactual run, its counts summed over ``seeds`` fill seeds (common to
    all policies); rates from the sums are the mean rates, chute counts are the first seed's."""
    runs: dict[str, CounterfactualRun] = {}
    for k in range(seeds):
        got = run_counterfactual(observed, engines, derive(Stream.SHADOW_TWIN, day, k))
        for label, run in got.items():
            total = runs.get(label)
            runs[label] = (
                run
                if total is None
                else replace(
                    total,
                    first_inductions=total.first_inductions + run.first_inductions,
                    recirculated=total.recirculated + run.recirculated,
                    first_recirculations=total.first_recirculations + run.first_recirculations,
                    sorted=total.sorted + run.sorted,
                    moves=total.moves + run.moves,
                )
            )
    return runs


def day_policies(day: SiteDay) -> tuple[list[PolicyRef], list[PolicyRef]]:
    """(served policies, most intervals first; shadow policies) of the day."""
    served: Counter[PolicyRef] = Counter()
    for event in day.allocations.values():
        ref = policy_of(event)
        if ref is not None:
            served[ref] += 1
    shadows: list[PolicyRef] = []
    for decisions in day.shadow.values():
        first = next(iter(decisions.values()))
        ref = policy_of(first)
        if ref is not None and ref not in served and ref not in shadows:
            shadows.append(ref)
    return [ref for ref, _ in served.most_common()], shadows


def compare(
    scenario: Scenario,
    day: SiteDay,
    fetch: Fetch,
    *,
    guardrails: str | None = None,
    extra: list[PolicyRef] | None = None,
    through: int | None = None,
    seeds: int = SHADOW_SEEDS,
) -> ShadowComparison:
    """Counterfactual runs of every policy of ``day`` (served, shadow and ``extra``) through
    interval ``through`` (default: the last closed), beside the floor's own counts."""
    served, shadows = day_policies(day)
    policies = [*served, *shadows, *[r for r in extra or [] if r not in served + shadows]]
    site = load_site(scenario, guardrails)
    engines = {
        ref.label: build_engine(site, ref.name if ref.sha256 is None else fetch(ref))
        for ref in policies
    }
    last = day.closed_through if through is None else min(through, day.closed_through)
    groups = default_groups(scenario)
    plan = honest_plan(groups, day.day_start.date(), day.day_key)  # the worker's plan
    observed = ObservedDay.from_events(scenario, day.day_start, plan, day.floor_events, last)
    runs = counterfactual_mean(observed, engines, day.day_start.date().toordinal(), seeds)
    hours = (last + 1) * scenario.interval_minutes / 60.0
    assert day.floor is not None
    floor = day.floor
    upto = slice(0, last + 1)
    rows = [
        KpiRow.of(
            "floor (reported)",
            "floor",
            hours,
            inducted=int(floor.first_inductions[upto].sum()),
            recirculated=int(floor.recirculated[upto].sum()),
            amount=int(floor.first_recirculations[upto].sum()),
            sorted_=int(floor.sorted[upto].sum()),
            moves=None,
        )
    ]
    for label, run in runs.items():
        role = "served" if label == (served[0].label if served else None) else "shadow"
        rows.append(
            KpiRow.of(
                f"{label} ({role}, twin)",
                "twin",
                hours,
                inducted=int(run.first_inductions.sum()) // seeds,
                recirculated=round(run.recirculated.sum() / seeds),
                amount=round(run.first_recirculations.sum() / seeds),
                sorted_=round(run.sorted.sum() / seeds),
                moves=round(run.moves.sum() / seeds),
            )
        )
    twin_error = None
    if len(served) == 1:
        twin_rate = rows[1].recirculation_rate
        twin_error = twin_rate - rows[0].recirculation_rate
    return ShadowComparison(
        site_id=day.site_id,
        day_key=day.day_key,
        closed_through=last,
        complete=last == scenario.n_intervals - 1,
        served=[ref.label for ref in served],
        rows=rows,
        runs=runs,
        floor_recirculated=floor.recirculated[upto].copy(),
        floor_inducted=floor.first_inductions[upto].copy(),
        twin_error=twin_error,
    )


def format_table(result: ShadowComparison) -> str:
    """The report as text: one line per policy and the floor."""
    span = "the day" if result.complete else f"intervals 0..{result.closed_through} (running)"
    lines = [
        f"site {result.site_id}, day {result.day_key}: {span}; served: "
        f"{', '.join(result.served) or 'nothing yet'}",
        f"{'':38} {'recirc %':>9} {'recirc':>8} {'amount':>8} {'sorted/h':>9} "
        f"{'moves':>6} {'unsorted':>8}",
    ]
    for row in result.rows:
        moves = "-" if row.chute_moves is None else str(row.chute_moves)
        lines.append(
            f"{row.label[:38]:38} {100 * row.recirculation_rate:9.3f} {row.recirculated:8d} "
            f"{row.recirculation_amount:8d} {row.throughput_per_hour:9.0f} {moves:>6} "
            f"{row.unsorted:8d}"
        )
    if result.twin_error is not None:
        lines.append(
            f"twin error on the served policy (twin - floor): "
            f"{100 * result.twin_error:+.3f} points of recirculation rate"
        )
    else:
        lines.append("twin error: n/a (more than one policy served the day)")
    return "\n".join(lines)


__all__ = ["KpiRow", "ShadowComparison", "compare", "day_policies", "format_table"]
