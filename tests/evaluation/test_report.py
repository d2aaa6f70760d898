"""Evaluation tables: per-group means, worst group and CVaR are what they claim."""

from __future__ import annotations

from evaluation.report import cvar, markdown, relative, relative_markdown, summarize


def _rows() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for group, rate in [(0, 0.01), (1, 0.05), (2, 0.02)]:
        for seed, jitter in enumerate([-0.005, 0.005]):
            rows.append(
                {
                    "policy": "p",
                    "group": group,
                    "seed": seed,
                    "recirculation_rate": rate + jitter,
                    "throughput_per_hour": 1000.0 * (group + 1),
                    "recirculation_amount": 10 * group,
                    "unsorted": group,
                }
            )
    return rows


def test_cvar_is_the_mean_of_the_worst_tail() -> None:
    assert cvar([1.0, 2.0, 3.0, 4.0, 5.0], 0.4, lower_is_better=True) == 4.5
    assert cvar([1.0, 2.0, 3.0, 4.0, 5.0], 0.4, lower_is_better=False) == 1.5
    assert cvar([7.0], 0.05, lower_is_better=True) == 7.0


def test_summary_reports_group_means_and_the_worst_group() -> None:
    summary = summarize(_rows())
    body = summary["p"]
    assert isinstance(body, dict)
    assert abs(body["per_group"][1]["recirculation_rate"] - 0.05) < 1e-12
    overall = body["overall"]["recirculation_rate"]
    assert overall["worst_group"] == 1
    assert abs(overall["mean"] - (0.01 + 0.05 + 0.02) / 3) < 1e-12
    # throughput: higher is better, so the worst group is the lowest
    assert body["overall"]["throughput_per_hour"]["worst_group"] == 0
    text = markdown(summary, "t")
    assert "| p | recirculation_rate | 2.67% |" in text


def test_relative_is_the_papers_per_group_change_and_counts_groups_no_worse() -> None:
    rows = _rows()
    for row in _rows():
        other = dict(row, policy="q")
        # q: twice p's rate in group 0, half in groups 1 and 2
        factor = 2.0 if row["group"] == 0 else 0.5
        other["recirculation_rate"] = float(row["recirculation_rate"]) * factor  # type: ignore[arg-type]
        rows.append(other)
    summary = summarize(rows)
    change = relative(summary, "p", ["q"])["q"]
    # p against q per group: -50%, +100%, +100%
    assert abs(change["recirculation_rate"] - (-0.5 + 1.0 + 1.0) / 3) < 1e-12
    assert change["throughput_per_hour"] == 0.0
    assert (change["groups_no_worse"], change["groups"]) == (1.0, 3.0)
    assert "| group | q | +50.0% | +0.00% | +0.0% | 1/3 |" in relative_markdown(
        {"group": summary}, "p"
    )
