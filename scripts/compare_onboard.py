"""An onboarded policy against a shipped one on the same days, with the seed spread of each.

Issue 19 asks that ``chuteflow site onboard`` on the built-in large site with its history
reproduce a policy "within the seed spread of the shipped one on the same suites". This runs
both policies (and proportional, the gate's reference) through the onboarding's own day runner
(``onboarding.tasks.run_day_job``, what the bundle's ``report.md`` figures come from) on two
sets of days, so neither policy is judged on the other's home ground only:

- ``bundle``: the bundle's ``site.yaml`` with the groups onboarding fitted (the plan both
  policies see comes from them): the held-out day files and the stress suites on those groups;
- ``builtin``: the built-in site (``--builtin``, the shipped groups the shipped policy was
  tuned against): the same held-out day files, the stress suites on the shipped groups, and
  ``rule``, the selection rule's validation days (``docs/policy-selection.md``; the shipped
  candidates' scores on exactly these days are in ``decision/policies/README.md``, so the
  onboarded policy can be placed among the hand-tuned training seeds, not only the shipped
  file's evaluation seeds).

Each suite runs ``--replicates`` times with disjoint seeds: replicate r of a group suite is one
day per group with ``evaluation_seed(r)`` (r = 0, 1 are the days onboarding evaluated; 0..4 the
shipped reports'); replicate r of ``history`` runs every held-out file with the twin seeded
``evaluation_seed(r * days + i)`` (r = 0 is onboarding's run). A policy's figure is the mean
over replicates of the report's headline (mean over groups, or over days for day files); its
spread is the min..max of the replicate headlines. "Within the spread" means the onboarded
policy's mean is no higher than the highest replicate of the shipped one; the paired
difference (same days, same seeds) is printed too.

    nice -n 19 .venv/bin/python scripts/compare_onboard.py --bundle /tmp/large-onboard/bundle \\
        --history /tmp/large-onboard/history --replicates 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.fanout import open_fanout
from evaluation.report import headline, summarize
from floor.daytypes import default_groups
from floor.scenario import load_scenario
from floor.seeds import Stream, derive, evaluation_seed
from onboarding.plan import OnboardOptions
from onboarding.tasks import RULE_DRIFTED, RULE_SAMPLED, DayJob, run_day_job

RULE = "rule"
"""The selection rule's validation days (every group x 3, as sampled and drifted)."""
RULE_PER_GROUP = 3
DEFAULT_SUITES = ("history", *OnboardOptions().suites)
"""What onboarding's report and gate look at: the held-out history and every stress suite."""


def _jobs(
    site: str,
    policy: str,
    label: str,
    suite: str,
    replicate: int,
    heldout: Sequence[Path],
) -> list[DayJob]:
    """One replicate of one suite for one policy on one site."""
    jobs: list[DayJob] = []
    if suite == "history":
        n = len(heldout)
        for i, path in enumerate(heldout):
            seed = evaluation_seed(replicate * n + i)
            jobs.append(DayJob(site, policy, label, "history", seed, i, file=str(path)))
        return jobs
    groups = default_groups(load_scenario(site))
    if suite == RULE:  # the rule's days do not depend on a replicate: run once
        for g in range(groups.n_groups):
            for k in range(RULE_PER_GROUP):
                seed = derive(Stream.VALIDATION_DAY, g, k)
                for kind in (RULE_SAMPLED, RULE_DRIFTED):
                    jobs.append(DayJob(site, policy, label, kind, seed, len(jobs), g))
        return jobs
    seed = evaluation_seed(replicate)
    return [DayJob(site, policy, label, suite, seed, g, g) for g in range(groups.n_groups)]


def _heldout_files(bundle: Path, history: Path) -> list[Path]:
    """The day files onboarding judged on: the names in the bundle's ``evaluation/history``."""
    rows = json.loads((bundle / "evaluation" / "history.json").read_text())
    names = sorted({str(r["day"]) for r in rows if r["day"]})
    files = [history / name for name in names]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"compare_onboard: held-out day files not in --history: {missing[0]}")
    return files


def _stats(rows: list[dict[str, Any]], policy: str) -> dict[str, Any]:
    """Headline per replicate (mean, worst group), their mean and min..max."""
    per_rep: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        if row["policy"] == policy:
            per_rep.setdefault(int(row["_replicate"]), []).append(row)
    heads = []
    for rep in sorted(per_rep):
        summary = summarize(per_rep[rep])
        mean, _, worst = headline(summary, policy)
        heads.append((mean, worst))
    means = [m for m, _ in heads]
    worsts = [w for _, w in heads]
    return {
        "mean": float(np.mean(means)),
        "min": min(means),
        "max": max(means),
        "worst": float(np.mean(worsts)),
        "worst_max": max(worsts),
        "replicates": means,
    }


def _within(
    stats: dict[str, dict[str, Any]], label: str, references: Sequence[str] = ("shipped",)
) -> bool:
    """A policy's mean over replicates no higher than the highest replicate of the references
    (the shipped file, and with ``--draw`` its recipe's other training draws)."""
    return bool(stats[label]["mean"] <= _top(stats, references) + 1e-12)


def _top(stats: dict[str, dict[str, Any]], references: Sequence[str]) -> float:
    """The highest replicate of any of the references."""
    return float(max(stats[r]["max"] for r in references))


def _paired(rows: list[dict[str, Any]], a: str, b: str) -> tuple[float, float, float]:
    """a minus b per replicate (same days): mean, min, max, in rate units."""
    reps = sorted({int(r["_replicate"]) for r in rows})
    diffs = []
    for rep in reps:
        ma = _stats([r for r in rows if r["_replicate"] == rep], a)["mean"]
        mb = _stats([r for r in rows if r["_replicate"] == rep], b)["mean"]
        diffs.append(ma - mb)
    return float(np.mean(diffs)), min(diffs), max(diffs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True, type=Path, help="the onboarding's bundle")
    parser.add_argument("--history", required=True, type=Path, help="the onboarded history")
    parser.add_argument("--shipped", default="decision/policies/drmarl-large.onnx")
    parser.add_argument("--builtin", default="large", help="built-in site of the shipped file")
    parser.add_argument("--replicates", type=int, default=3, help="seed replicates per suite")
    parser.add_argument("--suites", default=",".join(DEFAULT_SUITES))
    parser.add_argument(
        "--sites", default="bundle,builtin", help="bundle, builtin or both (comma list)"
    )
    parser.add_argument("--no-rule", action="store_true", help="skip the rule's days (builtin)")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="LABEL=PATH.onnx",
        help="another policy in the table (e.g. a bundle's single candidates)",
    )
    parser.add_argument(
        "--draw",
        action="append",
        default=[],
        metavar="LABEL",
        help="an --also policy that is another training draw of the shipped recipe "
        "(scripts/replicate_members.py): the onboarded policy is also counted against the "
        "shipped file and its draws together",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write every row as JSON here")
    args = parser.parse_args(argv)
    also_labels = [extra.partition("=")[0] for extra in args.also]
    if any(label not in also_labels for label in args.draw):
        parser.error(f"--draw must name an --also label ({', '.join(also_labels) or 'none'})")

    manifest = json.loads((args.bundle / "manifest.json").read_text())
    onboarded = str((args.bundle / manifest["selection"]["policy"]).resolve())
    heldout = _heldout_files(args.bundle, args.history)
    policies = [
        ("proportional", "proportional"),
        (str(Path(args.shipped).resolve()), "shipped"),
        (onboarded, "onboarded"),
    ]
    for extra in args.also:
        label, _, path = extra.partition("=")
        policies.append((str(Path(path).resolve()), label))
    sites = {"bundle": str((args.bundle / "site.yaml").resolve()), "builtin": args.builtin}
    suites = [s for s in args.suites.split(",") if s]
    plan: list[tuple[str, str, int, DayJob]] = []
    for site_name in args.sites.split(","):
        site = sites[site_name]
        site_suites = suites + ([RULE] if site_name == "builtin" and not args.no_rule else [])
        for suite in site_suites:
            for rep in range(1 if suite == RULE else args.replicates):
                for policy, label in policies:
                    for job in _jobs(site, policy, label, suite, rep, heldout):
                        plan.append((site_name, suite, rep, job))
    print(
        f"{len(plan)} day runs; onboarded {onboarded}; held-out {heldout[0].name}.."
        f"{heldout[-1].name} ({len(heldout)} files)",
        file=sys.stderr,
    )
    begin = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter() - begin
        if now - last[0] > 60 or done == total:
            last[0] = now
            print(f"  {done}/{total} day runs, {now / 60:.1f} min", file=sys.stderr, flush=True)

    with open_fanout(None, args.workers) as fanout:
        results = fanout.map(run_day_job, [job for *_, job in plan], progress)
    rows: list[dict[str, Any]] = []
    for (site_name, suite, rep, _), row in zip(plan, results, strict=True):
        rows.append({**row, "_site": site_name, "_suite": suite, "_replicate": rep})
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")

    print(
        f"\nRecirculation rate: mean over {args.replicates} seed replicates [min..max of the "
        "replicates] (worst group, mean of replicates); delta = onboarded - shipped on the "
        "same days, mean [min..max]. The rule's days are fixed: one run, no spread."
    )
    print(f"onboarded: {onboarded}\nshipped:   {args.shipped}\n")
    labels = " | ".join(label for _, label in policies)
    print(f"| site | suite | {labels} | delta (points) | within? |")
    print("|---|---|" + "---|" * len(policies) + "---|---|")
    verdicts = []
    extras = [label for _, label in policies[3:]]
    extra_within: dict[str, int] = dict.fromkeys(extras, 0)
    draws = ("shipped", *args.draw)
    draw_misses: list[str] = []
    for site_name in args.sites.split(","):
        for suite in dict.fromkeys(r["_suite"] for r in rows if r["_site"] == site_name):
            part = [r for r in rows if r["_site"] == site_name and r["_suite"] == suite]
            cells = []
            stats = {label: _stats(part, label) for _, label in policies}
            for _, label in policies:
                s = stats[label]
                spread = (
                    f" [{100 * s['min']:.2f}..{100 * s['max']:.2f}]"
                    if len(s["replicates"]) > 1
                    else ""
                )
                cells.append(f"{100 * s['mean']:.2f}%{spread} ({100 * s['worst']:.2f}%)")
            d, dmin, dmax = _paired(part, "onboarded", "shipped")
            within = _within(stats, "onboarded")
            excess = stats["onboarded"]["mean"] - stats["shipped"]["max"]
            verdict = "yes" if within else f"no (+{100 * excess:.2f} pts over its max)"
            verdicts.append(within)
            for label in extras:
                extra_within[label] += _within(stats, label)
            if args.draw and not _within(stats, "onboarded", draws):
                over = 100 * (stats["onboarded"]["mean"] - _top(stats, draws))
                draw_misses.append(f"{site_name} {suite} +{over:.3f}")
            print(
                f"| {site_name} | {suite} | "
                + " | ".join(cells)
                + f" | {100 * d:+.2f} [{100 * dmin:+.2f}..{100 * dmax:+.2f}] | {verdict} |"
            )
    print(
        f"\n{sum(verdicts)}/{len(verdicts)} suites within the shipped file's seed spread; "
        f"{len(plan)} day runs in {(time.perf_counter() - begin) / 60:.1f} min."
    )
    for label in extras:
        print(f"{label}: {extra_within[label]}/{len(verdicts)} suites within the same spread.")
    if args.draw:
        print(
            f"onboarded: {len(verdicts) - len(draw_misses)}/{len(verdicts)} suites within the "
            f"spread of the shipped file and its other draw(s) {', '.join(args.draw)} together"
            + (f"; over it (points): {'; '.join(draw_misses)}" if draw_misses else "")
            + "."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
