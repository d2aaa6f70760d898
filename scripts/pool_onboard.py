"""Pool the candidates of several finished onboarding bundles of one site, then select.

The shipped ``drmarl-large`` is the ten best of about thirty hand-run networks; one onboarding
run trains a handful. This puts the candidates of several finished runs of the same site (same
site file, same split, same groups file: so the same validation days) into a new bundle whose
``train`` stage is already done, and runs ``chuteflow site onboard`` on it: selection (the
pre-gate, the pick, the ensembles) and evaluation over all of them, nothing retrained. It is
how ``docs/onboarding-large-site.md``'s pool of twenty runs was made.

    .venv/bin/python scripts/pool_onboard.py /tmp/lo9/bundle /tmp/lo7/bundle:snap3 \\
        /tmp/lo8/bundle:lr01 -- --site S/site.yaml --history H --out /tmp/pool/bundle \\
        --seeds 5 --episodes 300 --groups-criterion gap --minutes 120 --ensemble-size 10

The ``site onboard`` flags after ``--`` must be the first bundle's (its journal key is checked
against them, so a pool is never judged on other days than its members were). A candidate of
a ``:TAG``ged bundle is renamed ``recipe-TAG-sN``; a network already pooled (same bytes) is
kept once. Exit 2 with one line when the bundles do not share the site, split and groups.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SHARED = ("site.yaml",)
"""Files every pooled bundle must hold byte for byte (beside its groups file and split)."""


def _journal(bundle: Path) -> dict[str, Any]:
    path = bundle / "journal.json"
    if not (bundle / "manifest.json").is_file() or not path.is_file():
        raise SystemExit(f"{bundle}: not a finished onboarding bundle (no manifest or journal)")
    journal: dict[str, Any] = json.loads(path.read_text())
    return journal


def _groups_file(bundle: Path) -> Path:
    found = sorted(bundle.glob("groups-*.npz"))
    if len(found) != 1:
        raise SystemExit(f"{bundle}: expected one groups-*.npz, found {len(found)}")
    return found[0]


def pool(sources: Sequence[tuple[Path, str]], partial: Path, key: str) -> dict[str, dict[str, Any]]:
    """Write ``partial`` (a bundle's ``.partial`` folder) with the first source's split and
    groups and every source's distinct candidates as its finished train stage; ``key`` is the
    journal key of the flags the pool will run with, which the first source must have."""
    from floor.files import write_atomic
    from onboarding.pipeline import Journal

    journals = [_journal(bundle) for bundle, _ in sources]  # each read once
    first, base = sources[0][0], journals[0]
    if base["inputs"] != key:
        raise SystemExit(
            f"{first}: made with other site, history or options than the flags after --; "
            "give the first bundle's flags"
        )
    groups = _groups_file(first)
    for (bundle, _), journal in zip(sources[1:], journals[1:], strict=True):
        for name in SHARED:
            if (bundle / name).read_bytes() != (first / name).read_bytes():
                raise SystemExit(f"{bundle}: its {name} differs from {first}'s; pool one site")
        if _groups_file(bundle).read_bytes() != groups.read_bytes():
            raise SystemExit(f"{bundle}: its groups differ from {first}'s (other validation days)")
        if journal["stages"]["split"]["result"] != base["stages"]["split"]["result"]:
            raise SystemExit(f"{bundle}: its split differs from {first}'s (other validation days)")
    partial.mkdir(parents=True)
    for path in (first / "site.yaml", groups):
        shutil.copyfile(path, partial / path.name)
    members: dict[str, dict[str, Any]] = {}
    seen: dict[str, str] = {}
    for (bundle, tag), journal in zip(sources, journals, strict=True):
        for name, member in journal["stages"]["train"]["result"]["members"].items():
            onnx = bundle / member["onnx"]
            digest = hashlib.sha256(onnx.read_bytes()).hexdigest()
            if digest in seen:
                kept = f"{bundle}: {name} is {seen[digest]} (same bytes), kept once"
                print(kept, file=sys.stderr)
                continue
            recipe, _, seed = name.rpartition("-")
            new = f"{recipe}-{tag}-{seed}" if tag else name
            if new in members:
                raise SystemExit(f"{bundle}: {name} would be pooled twice as {new}; tag it")
            seen[digest] = new
            shutil.copytree(onnx.parent, partial / "candidates" / new)
            members[new] = {**member, "onnx": f"candidates/{new}/{onnx.name}", "reused": True}
    train = base["stages"]["train"]
    write_atomic(partial / "plan.json", json.dumps(train["result"]["plan"], indent=1) + "\n")
    pooled = Journal(partial / "journal.json", base["inputs"])
    for stage in ("split", "groups"):
        pooled.finish(stage, base["stages"][stage]["seconds"], base["stages"][stage]["result"])
    pooled.finish("train", train["seconds"], {**train["result"], "members": members})
    return members


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args or args.index("--") == 0:
        print("usage: pool_onboard.py BUNDLE[:TAG] ... -- SITE-ONBOARD-FLAGS", file=sys.stderr)
        return 2
    split_at = args.index("--")
    sources = []
    for text in args[:split_at]:
        path, _, tag = text.partition(":")
        sources.append((Path(path), tag))
    flags = args[split_at + 1 :]
    from chuteflow.cli import build_parser
    from chuteflow.cli import main as chuteflow_main
    from chuteflow.cli.onboard import _options, _sites
    from onboarding.pipeline import OnboardError, check_inputs
    from onboarding.plan import OnboardOptions

    parsed = build_parser().parse_args(["site", "onboard", *flags])
    options = _options(parsed)
    assert isinstance(options, OnboardOptions)
    try:
        sites = _sites(parsed)
    except OnboardError as error:
        print(error, file=sys.stderr)
        return 2
    if len(sites) != 1 or sites[0].groups is not None:
        print("pool one site, its groups fitted: one --site, --history, --out", file=sys.stderr)
        return 2
    site = sites[0]
    out = site.out
    if out.exists() or out.with_name(out.name + ".partial").exists():
        print(f"{out}: already exists; pool into a new --out", file=sys.stderr)
        return 2
    partial = out.with_name(out.name + ".partial")
    try:
        key = check_inputs(site.site, site.history, out, options).key
        members = pool(sources, partial, key)
    except (SystemExit, OnboardError) as error:
        shutil.rmtree(partial, ignore_errors=True)  # never a half-pooled bundle to resume
        print(error, file=sys.stderr)
        return 2
    print(f"pooled {len(members)} candidates: {', '.join(sorted(members))}", file=sys.stderr)
    return chuteflow_main(["site", "onboard", *flags])


if __name__ == "__main__":
    sys.exit(main())
