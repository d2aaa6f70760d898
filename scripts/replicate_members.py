"""A shipped value ensemble's recipe trained again under other seeds: one more draw of it.

A shipped ensemble (``decision/policies/drmarl-large.onnx``) is the mean of the values of ten
networks, each from one training run whose settings sit in ``runs/<name>/members/NN-*/``. Its
figures are one draw of that recipe: how far another training of the same settings lands is a
spread the evaluation seeds do not show. This trains every member's settings again with its
seed moved by ``--seed-offset`` (each on its own, as onboarding trains its members:
``onboarding.tasks.train_member``, resumable), then averages the new networks in the members'
order into one ensemble (``python -m training.ensemble``, which writes the members' provenance
beside it), so ``scripts/compare_onboard.py --also
LABEL=OUT/ensemble.onnx`` can run it beside the shipped file on the same days and seeds.
``--seed-offset 0`` retrains the recorded settings as they are (today's trainer; members made
by an earlier trainer come out as other networks).

    nice -n 19 .venv/bin/python scripts/replicate_members.py --seed-offset 10 --out /tmp/rep10
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from evaluation.fanout import open_fanout
from onboarding.tasks import MemberJob, train_member
from training.ensemble import main as ensemble_main
from training.settings import Settings

MEMBERS = Path("decision/policies/runs/drmarl-large/members")


def member_jobs(members: Path, offset: int, out: Path) -> list[MemberJob]:
    """One job per ``NN-*/settings.json`` under ``members``, in its order, seed + ``offset``."""
    folders = sorted(path.parent for path in members.glob("*/settings.json"))
    if not folders:
        raise SystemExit(f"error: {members}: no member folder with a settings.json")
    jobs = []
    for folder in folders:
        recorded = Settings(**json.loads((folder / "settings.json").read_text()))
        settings = dataclasses.replace(recorded, seed=recorded.seed + offset)
        name = f"{folder.name}-o{offset}"
        jobs.append(MemberJob(name=name, settings=settings, out=str(out / name)))
    return jobs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=Path, default=MEMBERS, help="the NN-*/ run folders")
    parser.add_argument("--seed-offset", type=int, default=10, help="added to every seed")
    parser.add_argument("--out", type=Path, required=True, help="runs and ensemble.onnx")
    parser.add_argument("--workers", type=int, default=None, help="local processes (Ray)")
    parser.add_argument("--ray", default=None, help="a Ray address, or local")
    args = parser.parse_args(argv)
    jobs = member_jobs(args.members, args.seed_offset, args.out)
    start = time.monotonic()

    def progress(done: int, total: int) -> None:
        minutes = (time.monotonic() - start) / 60
        print(f"train: {done}/{total} members, {minutes:.1f} min", file=sys.stderr, flush=True)

    with open_fanout(args.ray, args.workers) as fan:
        runs = fan.map(train_member, jobs, progress)
    onnx = [str(run["onnx"]) for run in runs]
    target = args.out / "ensemble.onnx"
    version = f"{args.members.parent.name}-ens{len(onnx)}-o{args.seed_offset}"
    # training.ensemble's own command: the file and its members' provenance beside it
    if ensemble_main(["--out", str(target), "--version", version, *onnx]) != 0:
        return 2
    rows: list[dict[str, object]] = []
    for job, run, path in zip(jobs, runs, onnx, strict=True):
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        minutes = float(str(run["wall_seconds"])) / 60
        print(f"{job.name}: seed {job.settings.seed}, {minutes:.1f} min, sha256 {digest[:12]}")
        rows.append({"member": job.name, "seed": job.settings.seed, "sha256": digest, **run})
    (args.out / "members.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"{target}: mean of {len(onnx)} members, {(time.monotonic() - start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
