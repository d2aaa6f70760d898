"""Per-group and overall tables: mean, worst group and CVaR, as Markdown and JSON.

The robust objective is about the worst day type, so the table leads with it: a policy that
wins on average and collapses on one group is the failure the mission exists to prevent.

Days of a group-based suite carry the group they were sampled from; real history days carry
their hindsight nearest group (rows with ``group_kind`` ``nearest``): their tables say so, and
their mean is over days (each real day counts once) rather than over groups.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("recirculation_rate", "throughput_per_hour", "recirculation_amount", "unsorted")
LOWER_IS_BETTER = {
    "recirculation_rate": True,
    "throughput_per_hour": False,
    "recirculation_amount": True,
    "unsorted": True,
}
CVAR_ALPHA = 0.2
"""CVaR over the worst 20% of day runs: with 5 seeds per group that is still 20+ runs on the
large site, enough to be stable; the paper quotes 5% on far more rollouts."""

Row = dict[str, object]


def _num(row: Row, key: str) -> float:
    value = row[key]
    assert isinstance(value, int | float)
    return float(value)


def cvar(values: Sequence[float], alpha: float, lower_is_better: bool) -> float:
    """Mean of the worst ``alpha`` fraction of ``values`` (at least one value)."""
    ordered = sorted(values, reverse=lower_is_better)
    count = max(1, int(np.ceil(alpha * len(ordered))))
    return float(np.mean(ordered[:count]))


def group_kind(rows: Sequence[Row]) -> str:
    """``nearest`` when the rows' groups are real days' nearest groups, else ``group``."""
    kinds = {str(row.get("group_kind", "group")) for row in rows}
    return "nearest" if kinds == {"nearest"} else "group"


def summarize(rows: Sequence[Row]) -> dict[str, object]:
    """Per policy: per-group means and overall mean, worst group and CVaR of each metric
    (``mean`` over group means; ``mean_over_days`` over the day runs)."""
    kind = group_kind(rows)
    by_policy: dict[str, dict[int, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        group = row["group"]
        assert isinstance(group, int)
        by_policy[str(row["policy"])][group].append(row)
    summary: dict[str, object] = {}
    for policy, groups in by_policy.items():
        per_group = {
            group: {m: float(np.mean([_num(r, m) for r in runs])) for m in METRICS}
            for group, runs in sorted(groups.items())
        }
        overall: dict[str, object] = {}
        for metric in METRICS:
            group_means = [per_group[g][metric] for g in per_group]
            lower = LOWER_IS_BETTER[metric]
            worst_group = (max if lower else min)(per_group, key=lambda g: per_group[g][metric])
            all_runs = [_num(r, metric) for runs in groups.values() for r in runs]
            overall[metric] = {
                "mean": float(np.mean(group_means)),
                "std_over_groups": float(np.std(group_means)),
                "mean_over_days": float(np.mean(all_runs)),
                "std_over_days": float(np.std(all_runs)),
                "worst_group": worst_group,
                "worst_group_value": per_group[worst_group][metric],
                f"cvar{int(CVAR_ALPHA * 100)}": cvar(all_runs, CVAR_ALPHA, lower),
            }
        summary[policy] = {
            "per_group": per_group,
            "overall": overall,
            "runs": sum(len(r) for r in groups.values()),
            "group_kind": kind,
            "days_per_group": {g: len(runs) for g, runs in sorted(groups.items())},
        }
    return summary


def _body(summary: dict[str, object], policy: str) -> dict[str, Any]:
    body = summary[policy]
    assert isinstance(body, dict)
    return body


def summary_kind(summary: dict[str, object]) -> str:
    """``group`` or ``nearest`` (see :func:`group_kind`) of a summary."""
    kinds = {str(_body(summary, p).get("group_kind", "group")) for p in summary}
    return "nearest" if kinds == {"nearest"} else "group"


def headline(summary: dict[str, object], policy: str) -> tuple[float, int, float]:
    """(mean recirculation rate, worst group, its rate) of ``policy``: the mean over groups
    for group-based days, over days for real days (nearest groups)."""
    o = _body(summary, policy)["overall"]["recirculation_rate"]
    mean = o["mean_over_days"] if summary_kind(summary) == "nearest" else o["mean"]
    return float(mean), int(o["worst_group"]), float(o["worst_group_value"])


def markdown(summary: dict[str, object], title: str, note: str = "") -> str:
    """The overall table, then recirculation rate per group, one column per policy."""
    cvar_key = f"cvar{int(CVAR_ALPHA * 100)}"
    nearest = summary_kind(summary) == "nearest"
    lines = [f"# {title}", ""]
    if note:
        lines += [note, ""]
    if nearest:
        lines += ["## Overall (mean over days; worst nearest group; CVaR of days)", ""]
        lines.append(
            "| policy | metric | mean | std over days | worst nearest group | worst value | "
            f"CVaR {int(CVAR_ALPHA * 100)}% |"
        )
    else:
        lines += ["## Overall (mean over groups; worst group; CVaR of day runs)", ""]
        lines.append(
            "| policy | metric | mean | std over groups | worst group | worst value | "
            f"CVaR {int(CVAR_ALPHA * 100)}% |"
        )
    lines.append("|---|---|---|---|---|---|---|")
    mean_key, std_key = (
        ("mean_over_days", "std_over_days") if nearest else ("mean", "std_over_groups")
    )
    for policy, body in summary.items():
        assert isinstance(body, dict)
        for metric in METRICS:
            o = body["overall"][metric]
            lines.append(
                f"| {policy} | {metric} | {_fmt(metric, o[mean_key])} | "
                f"{_fmt(metric, o[std_key])} | {o['worst_group']} | "
                f"{_fmt(metric, o['worst_group_value'])} | {_fmt(metric, o[cvar_key])} |"
            )
    policies = list(summary)
    groups = sorted({g for p in policies for g in _body(summary, p)["per_group"]})
    days_per_group = _body(summary, policies[0]).get("days_per_group", {})
    if nearest:
        lines += ["", "## Recirculation rate per nearest group (hindsight)", ""]
        lines.append("| nearest group | days | " + " | ".join(policies) + " |")
        lines.append("|---|---|" + "---|" * len(policies))
    else:
        lines += ["", "## Recirculation rate per group", ""]
        lines.append("| group | " + " | ".join(policies) + " |")
        lines.append("|---|" + "---|" * len(policies))
    for group in groups:
        cells = []
        for policy in policies:
            body = summary[policy]
            assert isinstance(body, dict)
            value = body["per_group"].get(group, {}).get("recirculation_rate")
            cells.append("-" if value is None else _fmt("recirculation_rate", value))
        days = f"{days_per_group.get(group, '-')} | " if nearest else ""
        lines.append(f"| {group} | {days}" + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(metric: str, value: float) -> str:
    if metric == "recirculation_rate":
        return f"{100 * value:.2f}%"
    return f"{value:,.1f}"


def write_report(
    summary: dict[str, object], rows: Sequence[Row], out: Path, title: str, note: str = ""
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
    (out / "runs.json").write_text(json.dumps(list(rows), indent=1, sort_keys=True))
    (out / "report.md").write_text(markdown(summary, title, note))


def suites_markdown(
    summaries: Mapping[str, dict[str, object]], title: str, notes: Mapping[str, str] = {}
) -> str:
    """One table: a row per policy, per suite its mean recirculation rate and worst group.

    Group-based suites: mean over groups and the worst group; ``history`` and ``other``: mean
    over days and the worst hindsight nearest group (marked ``~``)."""
    suites = list(summaries)
    policies: list[str] = []
    for summary in summaries.values():
        policies += [p for p in summary if p not in policies]
    lines = [f"# {title}", "", "Recirculation rate: mean (worst group: its rate). "]
    lines[-1] += (
        "Group-based suites: mean over groups, the worst group sampled from; history days: "
        "mean over days, worst hindsight nearest group (~g)."
    )
    lines += ["", "| policy | " + " | ".join(suites) + " |", "|---|" + "---|" * len(suites)]
    for policy in policies:
        cells = []
        for suite in suites:
            summary = summaries[suite]
            if policy not in summary:
                cells.append("-")
                continue
            mean, worst, value = headline(summary, policy)
            mark = "~" if summary_kind(summary) == "nearest" else ""
            cells.append(
                f"{_fmt('recirculation_rate', mean)} ({mark}g{worst}: "
                f"{_fmt('recirculation_rate', value)})"
            )
        lines.append(f"| {policy} | " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "## Suites", ""]
        lines += [f"- `{suite}`: {notes[suite]}" for suite in suites if suite in notes]
    return "\n".join(lines) + "\n"


RELATIVE_METRICS = ("recirculation_rate", "throughput_per_hour", "recirculation_amount")


def relative(
    summary: dict[str, object], policy: str, baselines: Sequence[str]
) -> dict[str, dict[str, float]]:
    """The paper's Table 2 form: per group, ``policy``'s change against each baseline,
    averaged over the groups both ran; plus in how many groups ``policy``'s recirculation
    rate is no higher (``groups_no_worse`` of ``groups``)."""
    mine = _body(summary, policy)["per_group"]
    out: dict[str, dict[str, float]] = {}
    for base in baselines:
        theirs = _body(summary, base)["per_group"]
        shared = sorted(set(mine) & set(theirs))
        changes = {
            m: float(
                np.mean(
                    [
                        (mine[g][m] - theirs[g][m]) / theirs[g][m] if theirs[g][m] else 0.0
                        for g in shared
                    ]
                )
            )
            for m in RELATIVE_METRICS
        }
        changes["groups"] = float(len(shared))
        changes["groups_no_worse"] = float(
            sum(mine[g]["recirculation_rate"] <= theirs[g]["recirculation_rate"] for g in shared)
        )
        out[base] = changes
    return out


def relative_markdown(summaries: Mapping[str, dict[str, object]], policy: str) -> str:
    """Per suite, ``policy`` against every other policy: Table 2's averaged per-group changes
    and the count of groups in which it recirculates no more."""
    lines = [
        f"## {policy} against each policy, per group",
        "",
        "Mean over groups of the per-group relative change (the paper's Table 2 form), and "
        f"the groups in which {policy}'s recirculation rate is no higher.",
        "",
        "| suite | against | recirculation rate | throughput | recirculation amount "
        "| groups no worse |",
        "|---|---|---|---|---|---|",
    ]
    for suite, summary in summaries.items():
        if policy not in summary:
            continue
        for base, c in relative(summary, policy, [p for p in summary if p != policy]).items():
            lines.append(
                f"| {suite} | {base} | {100 * c['recirculation_rate']:+.1f}% | "
                f"{100 * c['throughput_per_hour']:+.2f}% | "
                f"{100 * c['recirculation_amount']:+.1f}% | "
                f"{int(c['groups_no_worse'])}/{int(c['groups'])} |"
            )
    return "\n".join(lines) + "\n"


def write_suites(
    summaries: Mapping[str, dict[str, object]],
    out: Path,
    title: str,
    notes: Mapping[str, str] = {},
    compare: str | None = None,
) -> Path:
    """``suites.md`` (the table) and ``suites.json`` (per suite and policy: mean, worst group
    and its rate, and the kind of group) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    table = {
        suite: {
            policy: dict(
                zip(
                    ("mean", "worst_group", "worst_group_value"),
                    headline(summary, policy),
                    strict=True,
                ),
                group_kind=summary_kind(summary),
            )
            for policy in summary
        }
        for suite, summary in summaries.items()
    }
    text = suites_markdown(summaries, title, notes)
    if compare is not None:
        text += "\n" + relative_markdown(summaries, compare)
        for suite, summary in summaries.items():
            if compare in summary:
                others = [p for p in summary if p != compare]
                table[suite][compare]["relative"] = relative(summary, compare, others)
    (out / "suites.json").write_text(json.dumps(table, indent=2, sort_keys=True))
    path = out / "suites.md"
    path.write_text(text)
    return path
