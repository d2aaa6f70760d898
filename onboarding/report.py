"""The bundle's ``report.md``: the split, the groups and why that many, the candidates and the
pick, every suite against the references, and the release gate's verdict with its reasons."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evaluation.plots import group_bars
from evaluation.report import headline
from floor.scenario import Scenario
from onboarding.gate import GateVerdict
from onboarding.plan import TrainingPlan

LOOKAHEAD = "lookahead"


def suite_table(summaries: Mapping[str, dict[str, object]]) -> list[str]:
    """One row per suite: each policy's mean (worst group) recirculation rate, and the learned
    policy's ratio to the lookahead's mean."""
    policies = list(next(iter(summaries.values()))) if summaries else []
    lines = [
        "| suite | " + " | ".join(policies) + " | learned / lookahead |",
        "|---|" + "---|" * (len(policies) + 1),
    ]
    for suite, summary in summaries.items():
        cells = []
        for policy in policies:
            mean, _, worst = headline(summary, policy)
            cells.append(f"{100 * mean:.2f}% ({100 * worst:.2f}%)")
        ratio = ""
        if "learned" in summary and LOOKAHEAD in summary:
            look = headline(summary, LOOKAHEAD)[0]
            ratio = f"{headline(summary, 'learned')[0] / look:.2f}x" if look > 0 else "n/a"
        lines.append(f"| {suite} | " + " | ".join(cells) + f" | {ratio} |")
    return lines


def _training_lines(plan_json: Mapping[str, Any]) -> list[str]:
    """What was trained, why that size, and the flags that make the same members elsewhere."""
    plan = TrainingPlan.from_json(plan_json)
    why = "pinned by hand" if plan.reason == "pinned" else f"sized from the budget: {plan.reason}"
    return [
        f"{plan.seeds} seed(s) x {plan.episodes} episodes of {', '.join(plan.recipes)} "
        f"({why}). The same members on any machine: `{plan.pin_flags()}` (a budget-sized plan "
        "follows the machine's measured speed; these flags do not)."
    ]


def _ensemble_text(selection: Mapping[str, Any]) -> str:
    """The ensembles the selection built (passing candidates; lowest means), judged whole."""
    parts = []
    for key, what in (("ensemble", "ensemble"), ("ensemble_top", "lowest-mean ensemble")):
        info = selection.get(key)
        if info is not None:
            built = "built" if info["built"] else "not built (one member)"
            parts.append(f"{what} of {', '.join(info['members'])} {built}")
    return "; ".join(parts)


def write_report(
    folder: Path,
    scenario: Scenario,
    manifest: Mapping[str, Any],
    summaries: Mapping[str, dict[str, object]],
    verdict: GateVerdict,
    selection: Mapping[str, Any],
    groups: Mapping[str, Any],
) -> Path:
    """Write ``report.md`` and its plots (``plots/<suite>.png``) into ``folder``."""
    plots = folder / "plots"
    plots.mkdir(exist_ok=True)
    split = manifest["split"]
    fitted = bool(groups["silhouettes"])  # supplied groups (--groups) have no k table
    lines = [
        f"# Onboarding report: {scenario.name} ({scenario.site_id})",
        "",
        f"**Recommended policy: {manifest['recommended_policy']}** "
        f"(release gate {'passed' if verdict.passed else 'refused the learned policy'}).",
        "",
        verdict.explanation(),
        "",
        "## Split in time",
        "",
        "| part | first | last | days |",
        "|---|---|---|---|",
        *(f"| {name} | {p['first']} | {p['last']} | {p['days']} |" for name, p in split.items()),
        "",
        (
            "Groups are fitted on the fit days"
            if fitted
            else "Groups were supplied (none of their days in the validation or held-out weeks)"
        )
        + ", candidates picked on the validation days; the held-out days only judge.",
        "",
        "## Day-type groups",
        "",
        *(
            [
                f"{groups['k']} groups, chosen by {groups['criterion']} over k = "
                f"{', '.join(groups['silhouettes'])}:",
                "",
                "| k | silhouette |",
                "|---|---|",
                *(f"| {k} | {s:.4f} |" for k, s in groups["silhouettes"].items()),
            ]
            if fitted
            else [f"{groups['k']} groups, {groups['criterion']}: not fitted here."]
        ),
        "",
        *(
            [
                "Gap statistic (gap, s, smallest group's days) per k: "
                + "; ".join(f"k={k}: {g:.3f}, {sd:.3f}, {n}" for k, (g, sd, n) in gaps.items())
                + ".",
                "",
            ]
            if (gaps := groups.get("gaps"))
            else []
        ),
        f"Days per group: {', '.join(str(n) for n in groups['sizes'])}.",
        "",
        "## Training",
        "",
        *_training_lines(manifest["training"]),
        "",
        "## Candidates (validation days; the rule of docs/policy-selection.md)",
        "",
        "Excess: the most the candidate is worse than proportional, in mean or worst group, on "
        "any kind of validation day (sampled, drifted, concentrated, the validation weeks); "
        "a candidate passes the pre-gate at 0 or below, and the rule picks among those first.",
        "",
        "| candidate | mean | worst group | excess (points) |",
        "|---|---|---|---|",
        *(
            f"| {name} | {100 * s['mean']:.2f}% | {100 * s['worst_group']:.2f}% | "
            + (
                f"{100 * x:+.2f} |"
                if (x := selection.get("excess", {}).get(name)) is not None
                else "- |"
            )
            for name, s in selection["scores"].items()
        ),
        "",
        f"Picked: {selection['picked']}; {_ensemble_text(selection)}; shipped: "
        f"{selection['final']} as `{selection['policy']}`.",
        "",
        "## Held-out evaluation",
        "",
        "Recirculation rate, mean (worst group); `history` is the held-out day files "
        "(groups: each day's nearest), the others are stress suites on the fitted groups.",
        "",
        *suite_table(summaries),
        "",
    ]
    for suite, summary in summaries.items():
        path = group_bars(summary, plots / f"{suite}.png", title=f"{scenario.name}: {suite}")
        lines.append(f"![{suite}](plots/{path.name})")
    lines += ["", "## Stage times (s)", ""]
    lines += [f"- {stage}: {seconds:.1f}" for stage, seconds in manifest["stage_seconds"].items()]
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


__all__ = ["suite_table", "write_report"]
