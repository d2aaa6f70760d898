"""``chuteflow evaluate``: policies x evaluation suites (day-type groups, held-out history,
plan mismatch), as tables and plots."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from chuteflow.cli._shared import (
    POLICY_HELP,
    Subparsers,
    add_kafka_options,
    add_scenario,
    broker_given,
    kafka_client,
    non_negative_int,
    positive_int,
)

if TYPE_CHECKING:
    from evaluation.run import RunSpec

NAME = "evaluate"
LEGACY_KINDS = ("group", "spike", "shifted")
SUITE_HELP = (
    "comma list of suites, or 'all': group (samples of each day-type group), spike, "
    "concentration (one top-tenth destination grown to 20%% of the day, plan unchanged), shifted, "
    "history (held-out real days of the site's own history after the groups' fit period: the "
    "primary suite), drift-0/drift-25/drift-50/drift-100 (group days with that share of "
    "destinations' volumes reassigned, plan unchanged), other (the same dates from other "
    "sites' histories, same layout). Writes OUT/<suite>/ (report.md, runs.json, "
    "summary.json, a plot) and OUT/suites.md"
)


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="policies x evaluation suites: tables and plots")
    add_scenario(parser)
    parser.add_argument(
        "--policies",
        default="static,proportional,lookahead",
        help="comma list; each one " + POLICY_HELP,
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--suite", metavar="SUITES", help=SUITE_HELP)
    which.add_argument(
        "--days",
        choices=LEGACY_KINDS,
        default=None,
        help="one group-based suite, its report in OUT itself (the layout before --suite; "
        "the default when --suite is not given is --days group). group: samples of each "
        "group; spike: plus one destination at 4x its volume; shifted: 30%% of destinations "
        "swap volumes (outside every group)",
    )
    parser.add_argument(
        "--groups", default="all", help="'all' or a comma list (group-based suites)"
    )
    parser.add_argument(
        "--seeds", type=positive_int, default=5, help="days sampled per group (group-based suites)"
    )
    parser.add_argument(
        "--history-days",
        type=non_negative_int,
        default=60,
        help="days of the history and other suites (default 60, from the day after the "
        "groups' fit period: 2025-01-01 for the shipped groups)",
    )
    parser.add_argument(
        "--other-seeds",
        default="11,12,13",
        help="history seeds of the other sites in the 'other' suite (comma list)",
    )
    parser.add_argument(
        "--oracle-plan",
        action="store_true",
        help="add, per policy, a reference row '<policy> (oracle plan)' handed the day's own "
        "plan: the true group's share, or a real day's hindsight nearest group",
    )
    parser.add_argument(
        "--compare",
        metavar="POLICY",
        help="--suite: the policy compared per group against every other in suites.md (the "
        "paper's Table 2 form and the groups in which it is no worse), by its row's name "
        "(e.g. drmarl); default: the last of --policies",
    )
    parser.add_argument("--guardrails", help="guardrail set name or YAML")
    parser.add_argument(
        "--workers", type=positive_int, default=None, help="local Ray CPUs (default 2; 1: serial)"
    )
    parser.add_argument(
        "--ray", default=None, metavar="ADDRESS", help="run the days on an existing Ray cluster"
    )
    parser.add_argument("--out", default="out/evaluate", help="report directory")
    add_kafka_options(
        parser,
        bootstrap_help="Kafka of the policy store, read only for store versions in --policies "
        "(default: bootstrap.servers of --kafka-config, else $KAFKA_BOOTSTRAP_SERVERS)",
    )
    parser.set_defaults(func=run)


def _policy_files(args: argparse.Namespace, scenario_name: str) -> list[str]:
    """Each of ``--policies`` as what a worker process builds its engine from: a built-in
    name or an ONNX path (a store version: its hash-checked file in the policy cache)."""
    from floor.errors import ChuteflowError
    from rollout.refs import resolve_policy
    from stream.policy_store import cache_dir

    texts = [p.strip() for p in args.policies.split(",") if p.strip()]
    if not texts:
        raise ChuteflowError("--policies: name at least one policy")
    client = kafka_client(args) if broker_given(args) else None
    out = []
    for text in texts:
        named = resolve_policy(text, scenario_name, client)
        if named.artifact is not None:
            out.append(str(cache_dir() / f"{named.artifact.sha256}.onnx"))
        else:
            out.append(str(named.engine_policy))
    return out


def parse_groups(text: str, n_groups: int) -> list[int]:
    """``all`` or a comma list of group indices in ``0..n_groups - 1``."""
    from floor.errors import ChuteflowError

    if text == "all":
        return list(range(n_groups))
    try:
        groups = [int(part) for part in text.split(",")]
    except ValueError:
        raise ChuteflowError(f"--groups {text!r}: use 'all' or a comma list of ints") from None
    bad = [g for g in groups if not 0 <= g < n_groups]
    if bad:
        raise ChuteflowError(f"--groups: {bad} outside 0..{n_groups - 1}")
    return groups


def _ints(flag: str, text: str) -> tuple[int, ...]:
    from floor.errors import ChuteflowError

    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ChuteflowError(f"{flag} {text!r}: use a comma list of ints") from None


def run(args: argparse.Namespace) -> int:
    from chuteflow.progress import Progress
    from decision.build import build_engine
    from evaluation.run import policy_label, run_all, suite_specs
    from evaluation.suites import SuiteError, SuiteOptions, parse_suites, suite_days
    from floor.daytypes import default_groups
    from floor.errors import ChuteflowError
    from floor.scenario import load_scenario
    from floor.site import load_site

    scenario = load_scenario(args.scenario)
    site_groups = default_groups(scenario)
    groups = parse_groups(args.groups, site_groups.n_groups)
    policies = _policy_files(args, scenario.name)
    site = load_site(scenario, args.guardrails)
    labels = [policy_label(p, build_engine(site, p).policy.name) for p in policies]
    compare = args.compare or labels[-1]
    if compare not in labels:
        raise ChuteflowError(f"--compare {compare!r}: not one of the policies' rows {labels}")
    legacy = args.suite is None
    try:
        suites = [args.days or "group"] if legacy else parse_suites(args.suite)
        options = SuiteOptions(
            groups=tuple(groups),
            seeds=args.seeds,
            history_days=args.history_days,
            other_seeds=_ints("--other-seeds", args.other_seeds),
        )
        for suite in suites:
            suite_days(suite, site_groups, options)  # fail fast on a bad option
    except SuiteError as error:
        raise ChuteflowError(str(error)) from None
    guardrails = args.guardrails or scenario.name
    per_suite = {
        suite: suite_specs(
            args.scenario, policies, suite, options, guardrails, oracle_plan=args.oracle_plan
        )
        for suite in suites
    }
    specs = [spec for suite_list in per_suite.values() for spec in suite_list]
    progress = Progress(len(specs), "evaluate")
    rows = run_all(
        specs,
        workers=args.workers,
        on_done=lambda done, _: progress.update(done),
        ray=args.ray,
    )
    progress.close()
    out = Path(args.out)
    if legacy:
        _write_legacy(args, scenario.name, policies, groups, suites[0], rows, out)
        return 0
    _write_suites(args, scenario.name, policies, per_suite, rows, out, compare)
    return 0


def _write_legacy(
    args: argparse.Namespace,
    scenario_name: str,
    policies: list[str],
    groups: list[int],
    kind: str,
    rows: Sequence[dict[str, object]],
    out: Path,
) -> None:
    """``--days KIND`` (and no flag): the report, runs, summary and plots in OUT itself."""
    from evaluation.demo import spike_study
    from evaluation.plots import group_bars
    from evaluation.report import summarize, write_report
    from evaluation.run import EVAL_SEED_BASE

    summary = summarize(rows)
    title = (
        f"{scenario_name}, {kind} days: {', '.join(policies)} over {len(groups)} groups "
        f"x {args.seeds} seeds"
    )
    write_report(summary, rows, out, title)
    group_bars(summary, out / "recirculation_by_group.png")
    spike = spike_study(args.scenario, policies, seed=EVAL_SEED_BASE)
    spike.plot(out / "spike_day_allocation.png")
    print((out / "report.md").read_text())


def _write_suites(
    args: argparse.Namespace,
    scenario_name: str,
    policies: list[str],
    per_suite: dict[str, list[RunSpec]],
    rows: Sequence[dict[str, object]],
    out: Path,
    compare: str,
) -> None:
    """``--suite``: OUT/<suite>/ per suite and OUT/suites.md across them."""
    from evaluation.demo import spike_study
    from evaluation.plots import group_bars, policy_bars
    from evaluation.report import summarize, write_report, write_suites
    from evaluation.run import EVAL_SEED_BASE
    from evaluation.suites import DESCRIPTIONS, HISTORY_SUITES

    summaries: dict[str, dict[str, object]] = {}
    start = 0
    for suite, specs in per_suite.items():
        suite_rows = rows[start : start + len(specs)]
        start += len(specs)
        summary = summaries[suite] = summarize(suite_rows)
        n_days = len(specs) // max(1, len({r["policy"] for r in suite_rows}))
        title = f"{scenario_name}, {suite} suite: {', '.join(summary)} over {n_days} days"
        folder = out / suite
        write_report(summary, suite_rows, folder, title, note=DESCRIPTIONS[suite])
        if suite in HISTORY_SUITES:
            policy_bars(summary, folder / "recirculation_by_policy.png", title=f"{suite} days")
        else:
            group_bars(
                summary, folder / "recirculation_by_group.png", title=f"{suite} days per group"
            )
        if suite == "spike":
            spike = spike_study(args.scenario, policies, seed=EVAL_SEED_BASE)
            spike.plot(folder / "spike_day_allocation.png")
    path = write_suites(
        summaries,
        out,
        f"{scenario_name}: {', '.join(policies)}; suites {', '.join(summaries)}",
        notes={suite: DESCRIPTIONS[suite] for suite in summaries},
        compare=compare,
    )
    print(path.read_text())
    print(f"per-suite reports in {out}/<suite>/")
