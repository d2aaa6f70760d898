"""``chuteflow site onboard``: a site file and its history in, a gated policy bundle out.

Stages, in order, each recorded in a journal (``BUNDLE.partial/journal.json``) when it ends,
so an interrupted run (a crash, Ctrl-C) resumes from the last finished stage, and inside
training from the last finished member (``onboarding.tasks.train_member`` reuses them):

1. ``split``: read and check the history, split it in time (fit / validation / held out);
2. ``groups``: fit day-type groups on the fit days, their count by a stated criterion (or
   copy the ones supplied with ``--groups``, checked in :func:`check_inputs`);
3. ``train``: MARL and DRMARL candidates, recipes x seeds sized from the budget;
4. ``select``: score every candidate on the validation days, pick by the written rule
   (``training.pregate``: the gate's test on validation days, then the rule's mean),
   build the value ensembles (passing candidates; lowest means), keep the first by the
   same rule;
5. ``evaluate``: every suite on the held-out days: static, proportional, lookahead, learned;
6. ``bundle``: the release gate, ``report.md`` with plots, ``manifest.json``; then the
   partial folder is renamed to the bundle (atomic on one filesystem).

Bad input (site file, history, options) fails before anything is written.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from evaluation.fanout import FanOut
from evaluation.report import summarize
from floor.daytypes import DayTypeGroups
from floor.errors import ChuteflowError
from floor.files import write_atomic
from floor.scenario import Scenario, load_scenario
from floor.seeds import Stream, derive, evaluation_seed
from floor.site import load_site
from floor.threads import blas_core
from onboarding.gate import release_gate
from onboarding.groups import choose_groups, k_range
from onboarding.history import HistoryDay, HistorySplit, read_history
from onboarding.plan import OnboardOptions, TrainingPlan, size_training
from onboarding.report import write_report
from onboarding.tasks import (
    RULE_CONCENTRATED,
    RULE_DRIFTED,
    RULE_SAMPLED,
    DayJob,
    MemberJob,
    finished_member,
    run_day_job,
    train_member,
)
from onboarding.timing import STAGES
from training.ensemble import ensemble
from training.pregate import ensemble_members, excess, lowest_mean, ranked, score

REFERENCES = ("static", "proportional", "lookahead")
LEARNED = "learned"
ENSEMBLE, ENSEMBLE_TOP = "ensemble", "ensemble-top"
"""The two value ensembles the selection builds and judges whole beside the pick: the
candidates that pass the pre-gate, and the ones with the lowest rule mean
(``docs/policy-selection.md``, amendments of 2026-12-03 04:27 and 17:15)."""
FILE_KEY = 1_000_000
"""Group key of validation file days in the ``VALIDATION_DAY`` seed stream (beyond any group)."""

Log = Callable[[str], None]
StageProgress = Callable[[str, int, int], None]
"""(stage, done, total): the CLI turns it into a progress line with an ETA."""


_PLOTS = threading.Lock()


class OnboardError(ChuteflowError):
    """Input or state that onboarding cannot use; one line."""


@dataclass(frozen=True)
class OnboardResult:
    bundle: Path
    recommended: str
    skipped: tuple[str, ...]
    """Stages read back from the journal instead of run."""
    manifest: dict[str, Any]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Journal:
    """The stage journal: what finished, how long it took and what it produced."""

    def __init__(self, path: Path, inputs: str) -> None:
        self.path = path
        if path.is_file():
            self.data: dict[str, Any] = json.loads(path.read_text())
            if self.data.get("inputs") != inputs:
                raise OnboardError(
                    f"{path.parent}: an unfinished onboarding of other inputs or options; "
                    "remove it or rerun with the same arguments"
                )
        else:
            self.data = {"inputs": inputs, "stages": {}}

    def done(self, stage: str) -> dict[str, Any] | None:
        entry = self.data["stages"].get(stage)
        return None if entry is None else dict(entry["result"])

    def finish(self, stage: str, seconds: float, result: dict[str, Any]) -> None:
        self.data["stages"][stage] = {"seconds": round(seconds, 3), "result": result}
        self.save()

    def seconds(self) -> dict[str, float]:
        return {s: float(e["seconds"]) for s, e in self.data["stages"].items()}

    def save(self) -> None:
        write_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True) + "\n")


def _inputs_key(
    site: Path, days: Sequence[HistoryDay], options: OnboardOptions, groups: Path | None = None
) -> str:
    """What the journal belongs to: the site file, every history file's name and size, the
    options, and a supplied groups file's bytes (not its path; only when given, so a run
    without ``--groups`` keeps the key it had before the option existed). A resume with
    anything else refuses instead of mixing two runs."""
    digest = hashlib.sha256(site.read_bytes())
    for day in days:
        digest.update(f"{day.path.name}:{day.path.stat().st_size}".encode())
    digest.update(json.dumps(options.__dict__, sort_keys=True, default=list).encode())
    if groups is not None:
        digest.update(b"groups:" + groups.read_bytes())
    return digest.hexdigest()


def check_supplied_groups(path: Path, scenario: Scenario, split: HistorySplit) -> DayTypeGroups:
    """``--groups``: a groups file that fits the layout and was fitted only on days before
    the validation weeks (a group built from the days that pick and judge the policy would
    leak them into training). Member labels that are not dates (day-file names) are not
    checked: a file gives no calendar for them.

    Raises:
        OnboardError: one line (unreadable, wrong shape, fitted on judged days).
    """
    groups = DayTypeGroups.load(path)  # its errors name the file
    try:
        groups.check_fits(scenario)
    except ChuteflowError as error:
        raise OnboardError(f"{path}: {error}") from None
    first = split.validation[0].day
    late = sorted(
        label
        for members in groups.members
        for label in members
        if (day := _label_date(label)) is not None and day >= first
    )
    if late:
        raise OnboardError(
            f"{path}: groups fitted on {len(late)} day(s) from {late[0][:10]} on, inside the "
            f"validation and held-out weeks (from {first.isoformat()}); fit them on earlier days"
        )
    return groups


def _label_date(label: str) -> date | None:
    try:
        return date.fromisoformat(label[:10])
    except ValueError:
        return None


@dataclass(frozen=True)
class CheckedInputs:
    """A site file and its history that passed every check, split in time."""

    site: Path
    scenario: Scenario
    days: list[HistoryDay]
    split: HistorySplit
    key: str = ""
    """The journal's and manifest's ``inputs``: what the run belongs to."""
    finished: dict[str, Any] | None = None
    """The manifest of a bundle already at ``--out`` made from these very inputs (a fleet
    rerun after some sites finished): reused, not rebuilt."""
    groups: Path | None = None
    """Day-type groups supplied instead of fitted (``--groups``, a fleet entry's ``groups``):
    checked by :func:`check_supplied_groups`, copied into the bundle by the groups stage."""
    unread: tuple[str, ...] = ()
    """Entries of the history folder that are not day files: not part of the run (the
    command names them)."""


def check_inputs(
    site: Path,
    history: Path,
    out: Path,
    options: OnboardOptions,
    groups: Path | None = None,
) -> CheckedInputs:
    """Everything that can be wrong with the input, checked before a file is written (and
    before a Ray is started). ``groups``: a site's own day-type groups, used instead of
    fitting them (its existing ones, or ``days fit-groups``').

    Raises:
        ChuteflowError: one line (site file, guardrails, history, split, options, output).
    """
    try:
        options.check()
    except ValueError as error:
        raise OnboardError(str(error)) from None
    if out.exists() and not (out / "manifest.json").is_file():
        raise OnboardError(f"{out}: already exists and is not a bundle; choose another --out")
    scenario = load_scenario(site)
    load_site(scenario)  # the guardrails must hold on the layout (an impossible layout fails)
    checked = read_history(
        history,
        scenario,
        options.heldout_weeks,
        options.validation_weeks,
        options.min_fit_days,
        options.allow_gaps,
    )
    if groups is not None:
        check_supplied_groups(groups, scenario, checked.split)
    key = _inputs_key(site, checked.days, options, groups)
    finished = None
    if out.exists():
        manifest = json.loads((out / "manifest.json").read_text())
        if manifest.get("inputs") != key:
            raise OnboardError(
                f"{out}: already holds a bundle of other inputs or options; choose another --out"
            )
        finished = manifest
    return CheckedInputs(
        site, scenario, checked.days, checked.split, key, finished, groups, checked.unread
    )


@contextlib.contextmanager
def bundle_lock(out: Path) -> Iterator[None]:
    """Hold ``BUNDLE.lock`` (an OS file lock) while a run writes ``BUNDLE.partial``.

    Two runs on one bundle would interleave journals and candidates (it happened: a command
    started twice from a shell). The lock dies with its process, so a crashed run never
    blocks the resume; the file itself is left, empty of meaning, and reused.

    Raises:
        OnboardError: another live process holds it (its pid in the message).
    """
    lock_path = out.with_name(out.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise OnboardError(
                f"{out}: another onboarding (pid {holder}) is writing this bundle; wait for it "
                "or stop it (a rerun then resumes)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def onboard(
    inputs: CheckedInputs,
    out: Path,
    options: OnboardOptions,
    fanout: FanOut,
    log: Log = lambda line: print(line, file=sys.stderr),
    progress: StageProgress | None = None,
) -> OnboardResult:
    """Run (or resume) every stage on :func:`check_inputs`'s inputs and write the bundle at
    ``out``; see the module doc. The caller holds :func:`bundle_lock` (``chuteflow site
    onboard`` takes every site's before Ray starts)."""
    if inputs.finished is not None:
        log("bundle: done before (same inputs), reused")
        manifest = inputs.finished
        return OnboardResult(out, str(manifest["gate"]["recommended"]), STAGES, manifest)
    started = time.perf_counter()
    site, scenario, days, split = inputs.site, inputs.scenario, inputs.days, inputs.split
    partial = out.with_name(out.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    journal = Journal(
        partial / "journal.json", inputs.key or _inputs_key(site, days, options, inputs.groups)
    )
    site_file = partial / "site.yaml"
    if not site_file.is_file():
        shutil.copyfile(site, site_file)
    site_path = str(site_file.resolve())
    skipped: list[str] = []

    def stage(name: str, body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        result = journal.done(name)
        if result is not None:
            skipped.append(name)
            log(f"stage {name}: done before, skipped (journal)")
            return result
        log(f"stage {name}: running")
        begin = time.perf_counter()
        result = body()
        journal.finish(name, time.perf_counter() - begin, result)
        log(f"stage {name}: done in {time.perf_counter() - begin:.1f} s")
        return result

    def on(name: str) -> Callable[[int, int], None]:
        return lambda done, total: progress(name, done, total) if progress else None

    stage("split", lambda: {"dates": split.dates()})
    groups_result = stage(
        "groups", lambda: _fit_groups(scenario, split, partial, options, inputs.groups)
    )
    log(f"groups: k = {groups_result['k']} by {groups_result['criterion']}")
    train_result = stage(
        "train",
        lambda: _train(site_path, scenario, partial, options, fanout, on("train"), log),
    )
    select_result = stage(
        "select",
        lambda: _select(
            site_path, scenario, split, partial, train_result, options, fanout, on("select")
        ),
    )
    eval_result = stage(
        "evaluate",
        lambda: _evaluate(
            site_path, scenario, split, partial, select_result, options, fanout, on("evaluate")
        ),
    )
    summaries = {suite: summarize(rows) for suite, rows in eval_result["rows"].items()}
    verdict = release_gate(summaries, LEARNED)
    bundle_begin = time.perf_counter()
    seconds = {**journal.seconds(), "bundle": 0.0}
    manifest = {
        "format_version": 1,
        "inputs": journal.data["inputs"],
        "site": scenario.name,
        "site_id": scenario.site_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
        "fanout": fanout.name,
        "split": split.dates(),
        "groups": {
            k: groups_result[k]
            for k in ("k", "criterion", "silhouettes", "gaps", "file")
            if k in groups_result
        },
        "training": train_result["plan"],
        "selection": {
            k: select_result[k]
            for k in ("picked", "final", "scores", "excess", "ensemble", "ensemble_top", "policy")
            if k in select_result
        },
        "gate": {
            "recommended": verdict.recommended,
            "passed": verdict.passed,
            "shortfalls": [s.line() for s in verdict.shortfalls],
            "suites": list(verdict.checked),
        },
        "recommended_policy": select_result["policy"] if verdict.passed else "proportional",
        "stage_seconds": seconds,
        "resumed_stages": skipped,
    }
    with _PLOTS:  # pyplot's state is global: one fleet site's report at a time
        write_report(partial, scenario, manifest, summaries, verdict, select_result, groups_result)
    (partial / "evaluation").mkdir(exist_ok=True)
    for suite, rows in eval_result["rows"].items():
        (partial / "evaluation" / f"{suite}.json").write_text(json.dumps(rows, indent=1) + "\n")
    seconds["bundle"] = round(time.perf_counter() - bundle_begin, 3)
    manifest["stage_seconds"] = seconds
    manifest["total_seconds"] = round(time.perf_counter() - started, 3)
    manifest["files"] = {
        str(p.relative_to(partial)): _sha256(p)
        for p in sorted(partial.rglob("*"))
        if p.is_file() and p.name not in ("journal.json", "manifest.json")
    }
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    partial.rename(out)
    return OnboardResult(out, verdict.recommended, tuple(skipped), manifest)


def _versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for package in ("chuteflow", "numpy", "onnxruntime", "ortools", "ray"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    core = blas_core()  # the kernels decide the trained bytes (floor.threads.BLAS_CORE)
    if core is not None:
        found["openblas_core"] = core
    return found


def _fit_groups(
    scenario: Scenario,
    split: HistorySplit,
    partial: Path,
    options: OnboardOptions,
    supplied: Path | None,
) -> dict[str, Any]:
    if supplied is not None:
        return _supplied_groups(supplied, scenario, partial)
    fit = split.fit
    choice = choose_groups(
        [d.counts for d in fit],
        [d.day.isoformat() for d in fit],
        scenario.name,
        k_range(len(fit), options.k_min, options.k_max),
        {"fit_first": fit[0].day.isoformat(), "fit_last": fit[-1].day.isoformat()},
        options.groups_criterion,
    )
    path = partial / f"groups-{scenario.name}.npz"
    choice.groups.save(path)
    return {
        "k": choice.k,
        "criterion": choice.criterion,
        "silhouettes": {str(k): s for k, s in choice.silhouettes.items()},
        "file": path.name,
        "sizes": [len(m) for m in choice.groups.members],
        **(
            {}
            if choice.gaps is None
            else {"gaps": {str(k): list(v) for k, v in choice.gaps.items()}}
        ),
    }


def _supplied_groups(source: Path, scenario: Scenario, partial: Path) -> dict[str, Any]:
    """The ``groups`` stage with ``--groups``: the file's bytes, copied where training and
    the worker look for the site's groups (``floor.daytypes.site_groups_path``). The file
    passed :func:`check_supplied_groups` in :func:`check_inputs`; the copy is read once for
    the stage's figures."""
    path = partial / f"groups-{scenario.name}.npz"
    shutil.copyfile(source, path)
    groups = DayTypeGroups.load(path)
    return {
        "k": groups.n_groups,
        "criterion": f"supplied (--groups {source.name}, sha256 {_sha256(path)[:12]})",
        "silhouettes": {},
        "file": path.name,
        "sizes": [len(m) for m in groups.members],
    }


def _day_seconds(site_path: str, runs: int = 3) -> float:
    """A proportional day-run's wall time here, what the training budget is sized by: the
    median of ``runs`` after one untimed run, since the first pays for imports and caches and
    a single timing moved a synthetic site's plan from 300 to 246 episodes."""
    job = DayJob(
        site_path,
        "proportional",
        "proportional",
        RULE_SAMPLED,
        derive(Stream.VALIDATION_DAY, 0, 0),
        0,
        0,
    )
    run_day_job(job)
    times = []
    for _ in range(runs):
        begin = time.perf_counter()
        run_day_job(job)
        times.append(time.perf_counter() - begin)
    return float(statistics.median(times))


def _train(
    site_path: str,
    scenario: Scenario,
    partial: Path,
    options: OnboardOptions,
    fanout: FanOut,
    on_done: Callable[[int, int], None],
    log: Log,
) -> dict[str, Any]:
    plan_file = partial / "plan.json"
    if plan_file.is_file():  # a resumed run trains the members it planned
        plan = TrainingPlan.from_json(json.loads(plan_file.read_text()))
    else:
        plan = size_training(options, _day_seconds(site_path), fanout.cpus)
        write_atomic(plan_file, json.dumps(plan.to_json(), indent=1) + "\n")
    why = (
        "pinned by --seeds and --episodes"
        if plan.reason == "pinned"
        else f"{plan.reason}; `{plan.pin_flags()}` pins it on any machine"
    )
    recipes = ", ".join(plan.recipes)
    log(f"train: {plan.seeds} seed(s) x {plan.episodes} episodes of {recipes} ({why})")
    members = plan.members(site_path)
    jobs = [
        MemberJob(name, settings, str(partial / "candidates" / name)) for name, settings in members
    ]
    # finished members are reused here, so the progress and its ETA count only real training
    reused = {job.name: r for job in jobs if (r := finished_member(job)) is not None}
    todo = [job for job in jobs if job.name not in reused]
    if reused:
        log(
            f"train: {len(reused)} of {len(jobs)} members finished before (same settings), "
            f"reused; {len(todo)} to train"
        )
    trained_now = fanout.map(train_member, todo, on_done) if todo else []
    fresh = dict(zip((j.name for j in todo), trained_now, strict=True))
    results = [reused[job.name] if job.name in reused else fresh[job.name] for job in jobs]
    trained = {
        job.name: {
            **result,
            "onnx": str(Path(str(result["onnx"])).relative_to(partial)),
            "algo": job.settings.algo,
        }
        for job, result in zip(jobs, results, strict=True)
    }
    return {"plan": plan.to_json(), "members": trained}


def _validation_jobs(
    site_path: str,
    groups: DayTypeGroups,
    split: HistorySplit,
    policy: str,
    label: str,
    per_group: int,
) -> list[DayJob]:
    """The selection rule's days (every group x ``per_group``, as sampled, drifted and
    concentrated) and the validation weeks' own day files.

    The concentrated days (one big destination at ``CONCENTRATION_SHARE`` of the day, plan
    unchanged) are there because the fitted groups cannot show the day type and the gate checks
    it: a rule that never saw it picked, on the large site, an ensemble whose weaker member
    lost those days to proportional. They recirculate most, so they weigh most in the mean."""
    jobs: list[DayJob] = []
    for g in range(groups.n_groups):
        for k in range(per_group):
            seed = derive(Stream.VALIDATION_DAY, g, k)
            for kind in (RULE_SAMPLED, RULE_DRIFTED, RULE_CONCENTRATED):
                jobs.append(DayJob(site_path, policy, label, kind, seed, len(jobs), g))
    for i, day in enumerate(split.validation):
        seed = derive(Stream.VALIDATION_DAY, FILE_KEY, i)
        jobs.append(
            DayJob(site_path, policy, label, "validation", seed, len(jobs), file=str(day.path))
        )
    return jobs


def _bundle_settings(run: Path) -> dict[str, Any]:
    """A member's training settings with the scenario as the bundle's ``site.yaml`` (the run
    was trained on the partial folder's absolute path), so the bundle reads the same
    wherever it was made or moved."""
    settings: dict[str, Any] = json.loads((run / "settings.json").read_text())
    settings["scenario"] = "site.yaml"
    return settings


def _select(
    site_path: str,
    scenario: Scenario,
    split: HistorySplit,
    partial: Path,
    train_result: dict[str, Any],
    options: OnboardOptions,
    fanout: FanOut,
    on_done: Callable[[int, int], None],
) -> dict[str, Any]:
    groups = DayTypeGroups.load(partial / f"groups-{scenario.name}.npz")
    members: dict[str, dict[str, Any]] = train_result["members"]
    policies = {name: str(partial / m["onnx"]) for name, m in members.items()}
    policies["proportional"] = "proportional"
    jobs = [
        job
        for name, policy in policies.items()
        for job in _validation_jobs(
            site_path, groups, split, policy, name, options.validation_per_group
        )
    ]
    rows = fanout.map(run_day_job, jobs, on_done)
    scores = {name: score([r for r in rows if r["policy"] == name]) for name in policies}
    candidates = {name: s for name, s in scores.items() if name in members}
    baseline = scores["proportional"]
    order = ranked(candidates, baseline)
    picked = order[0]
    algo = members[picked]["algo"]
    same_algo = [n for n in order if members[n]["algo"] == algo]
    wanted = {ENSEMBLE: ensemble_members(same_algo, scores, baseline, options.ensemble_size)}
    top = lowest_mean(same_algo, scores, options.ensemble_size)
    if set(top) != set(wanted[ENSEMBLE]):
        wanted[ENSEMBLE_TOP] = top
    policy_dir = partial / "policy"
    policy_dir.mkdir(exist_ok=True)
    infos: dict[str, dict[str, Any]] = {}
    contenders = {picked: scores[picked]}
    for label, names in wanted.items():
        infos[label] = {"members": names, "built": False}
        if len(names) < 2:
            continue
        data = [(n, (partial / members[n]["onnx"]).read_bytes()) for n in names]
        digest = hashlib.sha256(b"".join(d for _, d in data)).hexdigest()[:8]
        model = ensemble(data, f"{scenario.name}-ensemble{len(data)}-{digest}")
        ens_path = policy_dir / f"{label}.onnx"
        ens_path.write_bytes(model.SerializeToString())
        ens_rows = fanout.map(
            run_day_job,
            _validation_jobs(
                site_path, groups, split, str(ens_path), label, options.validation_per_group
            ),
        )
        scores[label] = contenders[label] = score(ens_rows)
        infos[label].update(built=True, score=scores[label])
    final = ranked(contenders, baseline)[0]
    chosen = policy_dir / f"{algo}-{scenario.name}.onnx"
    source = policy_dir / f"{final}.onnx" if final in infos else partial / members[final]["onnx"]
    shutil.copyfile(source, chosen)
    member_names = infos[final]["members"] if final in infos else [final]
    provenance = [
        {
            "name": n,
            "onnx": members[n]["onnx"],
            "sha256": _sha256(partial / members[n]["onnx"]),
            "settings": _bundle_settings(partial / Path(members[n]["onnx"]).parent),
        }
        for n in member_names
    ]
    (policy_dir / "members.json").write_text(json.dumps(provenance, indent=1) + "\n")
    (policy_dir / "settings.json").write_text(
        json.dumps(provenance[0]["settings"], indent=1, sort_keys=True) + "\n"
    )
    return {
        "picked": picked,
        "final": final,
        "excess": {
            name: excess(s, baseline) for name, s in scores.items() if name != "proportional"
        },
        "algo": algo,
        "scores": scores,
        "ensemble": infos[ENSEMBLE],
        "ensemble_top": infos.get(ENSEMBLE_TOP),
        "policy": str(chosen.relative_to(partial)),
    }


def _evaluate(
    site_path: str,
    scenario: Scenario,
    split: HistorySplit,
    partial: Path,
    select_result: dict[str, Any],
    options: OnboardOptions,
    fanout: FanOut,
    on_done: Callable[[int, int], None],
) -> dict[str, Any]:
    groups = DayTypeGroups.load(partial / f"groups-{scenario.name}.npz")
    learned = str(partial / select_result["policy"])
    policies = [(name, name) for name in REFERENCES] + [(learned, LEARNED)]
    jobs: list[DayJob] = []
    for policy, label in policies:
        for i, day in enumerate(split.heldout):
            jobs.append(
                DayJob(
                    site_path, policy, label, "history", evaluation_seed(i), i, file=str(day.path)
                )
            )
        for suite in options.suites:
            index = 0
            for g in range(groups.n_groups):
                for k in range(options.eval_seeds):
                    jobs.append(
                        DayJob(site_path, policy, label, suite, evaluation_seed(k), index, g)
                    )
                    index += 1
    rows = fanout.map(run_day_job, jobs, on_done)
    by_suite: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_suite.setdefault(str(row["day_kind"]), []).append(row)
    return {"rows": by_suite}


__all__ = [
    "LEARNED",
    "STAGES",
    "CheckedInputs",
    "OnboardError",
    "OnboardResult",
    "check_inputs",
    "check_supplied_groups",
    "onboard",
]
