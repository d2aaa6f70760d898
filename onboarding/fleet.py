"""A fleet in one run: several sites onboarded together, their tasks fanned out as one job.

A fleet file lists, per site, its site file, its history folder and its bundle folder (paths
relative to the fleet file)::

    sites:
      - site: north/site.yaml
        history: north/history
        out: bundles/north
      - site: south/site.yaml
        history: south/history
        out: bundles/south
        groups: south/groups-south.npz   # optional: the site's own groups, not fitted

Every site is checked before anything is written or a Ray is started (one bad site stops the
run with one line naming it). Then each site runs its own pipeline (``onboarding.pipeline``:
its own journal, its own atomic bundle, resumable on its own) in a thread of this process,
all of them submitting to the **same** fan-out: on Ray, the training members, candidate days
and evaluation days of every site are in the cluster's queue together, so a site waiting on
its last member does not leave CPUs idle while another still has work. A serial fan-out runs
the sites one after another (in-process training would share torch's global RNG across
threads; one at a time keeps the bytes).

The time budget (``--minutes``) is the whole run's: each site's training is sized on its share
of the CPUs (at least one each; more sites than CPUs overcommit, said in the plan's reason).
Rerunning a fleet after some sites finished reuses their bundles (same inputs) and resumes
the others from their journals.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from evaluation.fanout import FanOut, OnDone
from onboarding.pipeline import (
    CheckedInputs,
    Log,
    OnboardError,
    OnboardResult,
    StageProgress,
    check_inputs,
    onboard,
)
from onboarding.plan import OnboardOptions

Task = TypeVar("Task")
Result = TypeVar("Result")
FLEET_KEYS = ("site", "history", "out")
OPTIONAL_KEYS = ("groups",)


@dataclass(frozen=True)
class FleetSite:
    """One site of a fleet: its site file, history folder and bundle folder."""

    site: Path
    history: Path
    out: Path
    groups: Path | None = None
    """Day-type groups supplied instead of fitted (``pipeline.check_supplied_groups``)."""


def read_fleet(path: Path) -> list[FleetSite]:
    """The sites of a fleet file (format in the module doc).

    Raises:
        OnboardError: one line naming the file and what is wrong (not found, not YAML, no
            ``sites`` list, an entry without or with unknown keys).
    """
    try:
        text = path.read_text()
    except OSError as error:
        raise OnboardError(f"{path}: cannot read the fleet file ({error.strerror})") from None
    try:
        body = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise OnboardError(f"{path}: not valid YAML{where}") from None
    sites = body.get("sites") if isinstance(body, dict) else None
    if not isinstance(sites, list) or not sites:
        raise OnboardError(f"{path}: needs `sites:`, a list of {{site, history, out}} entries")
    base = path.parent
    out = []
    for index, entry in enumerate(sites, start=1):
        if not isinstance(entry, dict):
            raise OnboardError(f"{path}: sites[{index}] is not a mapping of site, history, out")
        missing = [k for k in FLEET_KEYS if not isinstance(entry.get(k), str)]
        allowed = (*FLEET_KEYS, *OPTIONAL_KEYS)
        unknown = sorted(set(entry) - set(allowed))
        if "groups" in entry and not isinstance(entry["groups"], str):
            missing.append("groups as a path")
        if missing or unknown:
            what = f"needs {', '.join(missing)}" if missing else f"unknown {', '.join(unknown)}"
            raise OnboardError(f"{path}: sites[{index}] {what} (allowed: {', '.join(allowed)})")
        groups = base / str(entry["groups"]) if "groups" in entry else None
        site, history, bundle = (base / str(entry[k]) for k in FLEET_KEYS)
        out.append(FleetSite(site, history, bundle, groups))
    return out


def check_fleet(sites: Sequence[FleetSite], options: OnboardOptions) -> list[CheckedInputs]:
    """Every site's inputs checked (``pipeline.check_inputs``), and the fleet as a whole: no
    two sites share a bundle folder or a site id (their routes would collide).

    Raises:
        ChuteflowError: one line, naming the site's file when it is one site's input.
    """
    outs = [s.out.resolve() for s in sites]
    for i, out in enumerate(outs):
        if out in outs[:i]:
            raise OnboardError(f"{sites[i].out}: two fleet sites write the same bundle")
    checked = [check_inputs(s.site, s.history, s.out, options, s.groups) for s in sites]
    seen: dict[str, Path] = {}
    for site, inputs in zip(sites, checked, strict=True):
        site_id = inputs.scenario.site_id
        if site_id in seen:
            raise OnboardError(f"{site.site}: site id {site_id} is also {seen[site_id]}'s")
        seen[site_id] = site.site
    return checked


class SharedFanOut:
    """One site's view of the fleet's fan-out: the same backend, a share of its CPUs (what the
    site's training budget is sized by)."""

    def __init__(self, fanout: FanOut, sites: int) -> None:
        self._fanout = fanout
        self.cpus = max(1, fanout.cpus // sites)
        self.name = f"{fanout.name}, shared by {sites} sites"

    def map(
        self,
        function: Callable[[Task], Result],
        tasks: Sequence[Task],
        on_done: OnDone | None = None,
    ) -> list[Result]:
        return self._fanout.map(function, tasks, on_done)


@dataclass(frozen=True)
class FleetOutcome:
    """A site's result, or the one-line error it stopped on (its partial folder is kept)."""

    site: FleetSite
    result: OnboardResult | None
    error: str | None


def onboard_fleet(
    sites: Sequence[FleetSite],
    checked: Sequence[CheckedInputs],
    options: OnboardOptions,
    fanout: FanOut,
    log: Log,
    progress: StageProgress | None = None,
) -> list[FleetOutcome]:
    """Onboard every site (see the module doc); outcomes in the fleet's order. A site that
    fails does not stop the others."""
    names = [inputs.scenario.name for inputs in checked]

    def run(index: int, share: FanOut, catch: bool = True) -> FleetOutcome:
        name = names[index]

        def site_progress(stage: str, done: int, total: int) -> None:
            if progress is not None:
                progress(f"{name} {stage}" if len(sites) > 1 else stage, done, total)

        try:
            result = onboard(
                checked[index],
                sites[index].out,
                options,
                share,
                log=(lambda line: log(f"{name}: {line}")) if len(sites) > 1 else log,
                progress=site_progress,
            )
        except Exception as error:  # one site's failure is reported, the others go on
            if not catch:
                raise
            return FleetOutcome(sites[index], None, str(error).splitlines()[0] or repr(error))
        return FleetOutcome(sites[index], result, None)

    if len(sites) == 1:  # one site: its error is the command's (one line, exit 2)
        return [run(0, fanout, catch=False)]
    if fanout.cpus <= 1:
        return [run(i, fanout) for i in range(len(sites))]
    share = SharedFanOut(fanout, len(sites))
    outcomes: list[Any] = [None] * len(sites)

    def thread_body(index: int) -> None:
        outcomes[index] = run(index, share)

    threads = [
        threading.Thread(target=thread_body, args=(i,), name=f"onboard-{names[i]}", daemon=True)
        for i in range(len(sites))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():  # a timed join keeps Ctrl-C reaching this (main) thread
            thread.join(timeout=0.5)
    return list(outcomes)


__all__ = [
    "FleetOutcome",
    "FleetSite",
    "SharedFanOut",
    "check_fleet",
    "onboard_fleet",
    "read_fleet",
]
