"""Per-group and overall tables: mean, worst group and CVaR, as Markdown and JSON.

The robust objective is about the worst day type, so the table leads with it: a policy that
wins on average and collapses on one group is the failure the mission exists to prevent.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

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


def summarize(rows: Sequence[Row]) -> dict[str, object]:
    """Per policy: per-group means and overall mean, worst group and CVaR of each metric."""
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
                "worst_group": worst_group,
                "worst_group_value": per_group[worst_group][metric],
                f"cvar{int(CVAR_ALPHA * 100)}": cvar(all_runs, CVAR_ALPHA, lower),
            }
        summary[policy] = {
            "per_group": per_group,
            "overall": overall,
            "runs": sum(len(r) for r in groups.values()),
        }
    return summary


def markdown(summary: dict[str, object], title: str) -> str:
    """The overall table, then recirculation rate per group, one column per policy."""
    cvar_key = f"cvar{int(CVAR_ALPHA * 100)}"
    lines = [f"# {title}", "", "## Overall (mean over groups; worst group; CVaR of day runs)", ""]
    lines.append(
        "| policy | metric | mean | std over groups | worst group | worst value | "
        f"CVaR {int(CVAR_ALPHA * 100)}% |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for policy, body in summary.items():
        assert isinstance(body, dict)
        for metric in METRICS:
            o = body["overall"][metric]
            lines.append(
                f"| {policy} | {metric} | {_fmt(metric, o['mean'])} | "
                f"{_fmt(metric, o['std_over_groups'])} | {o['worst_group']} | "
                f"{_fmt(metric, o['worst_group_value'])} | {_fmt(metric, o[cvar_key])} |"
            )
    policies = list(summary)
    first = summary[policies[0]]
    assert isinstance(first, dict)
    groups = list(first["per_group"])
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
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(metric: str, value: float) -> str:
    if metric == "recirculation_rate":
        return f"{100 * value:.2f}%"
    return f"{value:,.1f}"


def write_report(summary: dict[str, object], rows: Sequence[Row], out: Path, title: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
    (out / "runs.json").write_text(json.dumps(list(rows), indent=1, sort_keys=True))
    (out / "report.md").write_text(markdown(summary, title))
