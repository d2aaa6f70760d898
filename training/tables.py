"""The paper's two tables, from scratch: train every policy, evaluate on held-out days.

``chuteflow train --scenario small --table --out DIR`` (Table 1): recirculation rate mean and
std over the 9 groups for marl (trained on the typical group), drmarl, drmarl-exhaustive and a
per-group marl trained on each group (the oracle), plus training wall times.

``chuteflow train --scenario large --table --out DIR`` (Table 2): drmarl relative to marl on
recirculation rate, throughput and recirculation amount averaged over the 21 groups, with
static and proportional for reference, and stress days (spikes, shifted destination mix).

Robust policies train with the shipped recipe (``training.settings.SHIPPED_RECIPES``: the
contamination and drifted days their picked seeds used); marl as in the paper.
Evaluation days use seeds from ``EVAL_SEED_BASE`` on, disjoint from every training seed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from evaluation.fanout import FanOut, SerialFanOut, open_fanout
from evaluation.plots import group_bars
from evaluation.report import relative as relative_change
from evaluation.report import summarize, write_report
from evaluation.run import RunSpec, run_all, specs_for
from training.dqn import ALGOS, Settings, Trainer, finished_run, write_run
from training.settings import recipe

Row = dict[str, object]


def _train_one(job: tuple[Settings, str]) -> dict[str, object]:
    settings, out = job
    reused = finished_run(settings, Path(out))
    if reused is not None:
        return reused
    trainer = Trainer(settings)
    result = trainer.train()
    path = write_run(result, settings, Path(out), trainer.scenario)
    return {
        "onnx": str(path),
        "wall_seconds": result.wall_seconds,
        "env_steps": result.env_steps,
        "branch_steps": result.branch_steps,
        "predictor": result.predictor_report,
    }


def train_all(
    jobs: Sequence[tuple[str, Settings]], out: Path, fanout: FanOut | None = None
) -> dict[str, dict[str, object]]:
    """Train each named job into ``out/<name>`` on ``fanout`` (default: here, in turn);
    returns name -> run summary. A job already trained with the same settings is reused."""
    payload = [(settings, str(out / name)) for name, settings in jobs]
    results = (fanout or SerialFanOut()).map(_train_one, payload)
    return {name: result for (name, _), result in zip(jobs, results, strict=True)}


def _seconds(run: dict[str, object]) -> float:
    wall = run["wall_seconds"]
    assert isinstance(wall, float)
    return wall


def _policy_summary(summary: dict[str, object], policy: str) -> dict[str, Any]:
    body = summary[policy]
    assert isinstance(body, dict)
    return body


def _rate_stats(summary: dict[str, object], policy: str) -> dict[str, float]:
    """Recirculation rate over the groups, as ``evaluation.report.summarize`` computed it."""
    overall = _policy_summary(summary, policy)["overall"]["recirculation_rate"]
    return {
        "mean": overall["mean"],
        "std": overall["std_over_groups"],
        "worst": overall["worst_group_value"],
    }


def small_table(
    out: Path, episodes: int, seeds: int, fanout: FanOut, log: Callable[[str], None] = print
) -> dict[str, object]:
    """Table 1 on the small site."""
    base = recipe("small", "marl", episodes=episodes)
    from floor.daytypes import default_groups
    from floor.scenario import load_scenario

    n_groups = default_groups(load_scenario("small")).n_groups
    jobs: list[tuple[str, Settings]] = [
        (algo, recipe("small", algo, episodes=episodes)) for algo in ALGOS
    ]
    jobs += [(f"marl-group{g}", replace(base, train_group=g)) for g in range(n_groups)]
    log(f"training {len(jobs)} policies on the small site ({episodes} episodes each)")
    trained = train_all(jobs, out / "policies", fanout)
    groups = list(range(n_groups))
    policies = ["static", "proportional", "lookahead"] + [str(trained[a]["onnx"]) for a in ALGOS]
    specs = specs_for("small", policies, groups, seeds, "small")
    for g in groups:
        specs += [
            replace(spec, policy=str(trained[f"marl-group{g}"]["onnx"]))
            for spec in specs_for("small", ["x"], [g], seeds, "small")
        ]
    log(f"evaluating {len(specs)} days")
    rows = run_all(specs, fanout=fanout)
    # per-group marl policies all carry the name "marl": relabel the oracle's rows
    oracle_rows = rows[len(specs) - n_groups * seeds :]
    main_rows = rows[: len(specs) - n_groups * seeds]
    for row in oracle_rows:
        row["policy"] = "marl per group (oracle)"
    rows = main_rows + oracle_rows
    summary = summarize(main_rows)
    write_report(summary, rows, out / "evaluation", "Small site, held-out days")
    group_bars(summary, out / "evaluation" / "recirculation_by_group.png")
    with_oracle = summarize(rows)
    table: list[dict[str, object]] = []
    for name in ["static", "proportional", "lookahead", *ALGOS, "marl per group (oracle)"]:
        stats = _rate_stats(with_oracle, name)
        wall: float | None = None
        if name in trained:
            wall = _seconds(trained[name])
        elif name.startswith("marl per group"):
            wall = sum(_seconds(trained[f"marl-group{g}"]) for g in groups)
        table.append({"method": name, **stats, "training_wall_seconds": wall})
    result = {"table": table, "training": trained, "seeds_per_group": seeds}
    (out / "table1.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "table1.md").write_text(_table1_markdown(table, trained))
    return result


def _table1_markdown(table: list[dict[str, object]], trained: dict[str, dict[str, object]]) -> str:
    lines = [
        "# Table 1: small site, recirculation rate over the 9 groups (held-out days)",
        "",
        "| method | mean +- std over groups | worst group | training wall time |",
        "|---|---|---|---|",
    ]
    for row in table:
        wall = row["training_wall_seconds"]
        wall_text = "-" if wall is None else f"{float(wall):.0f} s"  # type: ignore[arg-type]
        lines.append(
            f"| {row['method']} | {100 * float(row['mean']):.2f}% +- "  # type: ignore[arg-type]
            f"{100 * float(row['std']):.2f}% | {100 * float(row['worst']):.2f}% | {wall_text} |"  # type: ignore[arg-type]
        )
    predictor = trained["drmarl"].get("predictor")
    if isinstance(predictor, dict):
        lines += [
            "",
            f"Worst-group predictor: picks the true worst group in "
            f"{100 * predictor['worst_group_accuracy']:.1f}% of held-out intervals; mean error "
            f"{100 * predictor['mean_error_recirculation_rate']:.2f} points of recirculation rate.",
        ]
    return "\n".join(lines) + "\n"


def large_table(
    out: Path, episodes: int, seeds: int, fanout: FanOut, log: Callable[[str], None] = print
) -> dict[str, object]:
    """Table 2 on the large site, with stress days."""
    jobs: list[tuple[str, Settings]] = [
        ("marl", recipe("large", "marl", episodes=episodes)),
        ("drmarl", recipe("large", "drmarl", episodes=episodes)),
    ]
    log(f"training marl and drmarl on the large site ({episodes} episodes each)")
    trained = train_all(jobs, out / "policies", fanout)
    from floor.daytypes import default_groups
    from floor.scenario import load_scenario

    groups = list(range(default_groups(load_scenario("large")).n_groups))
    policies = [
        "static",
        "proportional",
        str(trained["marl"]["onnx"]),
        str(trained["drmarl"]["onnx"]),
    ]
    sections: dict[str, list[Row]] = {}
    summaries: dict[str, dict[str, object]] = {}
    for kind, kind_seeds in (("group", seeds), ("spike", 1), ("shifted", 1)):
        specs: list[RunSpec] = specs_for("large", policies, groups, kind_seeds, "large", kind)
        log(f"evaluating {len(specs)} {kind} days")
        sections[kind] = run_all(specs, fanout=fanout)
        summary = summaries[kind] = summarize(sections[kind])
        write_report(
            summary, sections[kind], out / f"evaluation-{kind}", f"Large site, {kind} days"
        )
        group_bars(summary, out / f"evaluation-{kind}" / "recirculation_by_group.png")
    relative = relative_change(summaries["group"], "drmarl", ["marl", "static", "proportional"])
    result = {"relative": relative, "training": trained, "seeds_per_group": seeds}
    stress = {
        kind: {p: _rate_stats(summary, p) for p in ("static", "proportional", "marl", "drmarl")}
        for kind, summary in summaries.items()
    }
    result["stress"] = stress
    (out / "table2.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "table2.md").write_text(_table2_markdown(relative, stress))
    return result


def _table2_markdown(
    relative: Mapping[str, Mapping[str, float]], stress: dict[str, dict[str, dict[str, float]]]
) -> str:
    lines = [
        "# Table 2: large site, drmarl relative to each baseline (mean over the 21 groups)",
        "",
        "| baseline | recirculation rate | throughput | recirculation amount |",
        "|---|---|---|---|",
    ]
    for base, changes in relative.items():
        assert isinstance(changes, dict)
        lines.append(
            f"| {base} | {100 * changes['recirculation_rate']:+.2f}% | "
            f"{100 * changes['throughput_per_hour']:+.2f}% | "
            f"{100 * changes['recirculation_amount']:+.2f}% |"
        )
    lines += [
        "",
        "## Recirculation rate by day kind (mean over groups; worst group)",
        "",
        "| day kind | " + " | ".join(next(iter(stress.values()))) + " |",
        "|---|" + "---|" * len(next(iter(stress.values()))),
    ]
    for kind, per_policy in stress.items():
        cells = [f"{100 * s['mean']:.2f}% ({100 * s['worst']:.2f}%)" for s in per_policy.values()]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_table(
    scenario: str,
    out: Path,
    episodes: int,
    seeds: int,
    workers: int | None,
    ray: str | None = None,
) -> dict[str, object]:
    """Train and evaluate the table's policies, fanned out on ``open_fanout(ray, workers)``."""
    if scenario not in ("small", "large"):
        raise ValueError("--table exists for the small and large scenarios")
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    from floor.daytypes import default_groups
    from floor.scenario import load_scenario
    from twin.groups import format_group_table

    # Robustness needs groups that differ: the table starts from their spread.
    spread = format_group_table(default_groups(load_scenario(scenario)))
    (out / "groups.md").write_text(f"# Day-type groups ({scenario})\n\n```\n{spread}\n```\n")
    with open_fanout(ray, workers) as fanout:
        table = small_table if scenario == "small" else large_table
        result = table(out, episodes, seeds, fanout)
    result["wall_seconds"] = time.perf_counter() - start
    return result
