"""``scripts/replicate_members.py``: a recorded member's settings retrained with offset 0 give
its network byte for byte; an offset moves every seed, and a rerun resumes every member."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from onboarding.tasks import MemberJob, train_member
from training.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from replicate_members import main as replicate_main


def _recorded(members: Path) -> list[bytes]:
    """Two finished quick runs, as a shipped ensemble's ``members/NN-*`` folders hold them."""
    networks = []
    for index, seed in ((1, 3), (2, 5)):
        settings = Settings.quick(scenario="small", algo="drmarl", seed=seed)
        run = train_member(MemberJob("m", settings, str(members / f"{index:02d}-small-s{seed}")))
        networks.append(Path(str(run["onnx"])).read_bytes())
    return networks


def test_offset_zero_rebuilds_the_recorded_networks(tmp_path: Path) -> None:
    members = tmp_path / "members"
    recorded = _recorded(members)
    out = tmp_path / "o0"
    assert (
        replicate_main(
            ["--members", str(members), "--seed-offset", "0", "--out", str(out), "--workers", "1"]
        )
        == 0
    )
    rows = json.loads((out / "members.json").read_text())
    assert [row["seed"] for row in rows] == [3, 5]
    assert [Path(row["onnx"]).read_bytes() for row in rows] == recorded
    assert not any(row["reused"] for row in rows)
    assert (out / "ensemble.onnx").stat().st_size > 0


def test_an_offset_moves_every_seed_and_a_rerun_resumes(tmp_path: Path) -> None:
    members = tmp_path / "members"
    recorded = _recorded(members)
    out = tmp_path / "o10"
    flags = ["--members", str(members), "--seed-offset", "10", "--out", str(out), "--workers", "1"]
    assert replicate_main(flags) == 0
    first = json.loads((out / "members.json").read_text())
    ensemble = (out / "ensemble.onnx").read_bytes()
    assert [row["seed"] for row in first] == [13, 15]
    assert [Path(row["onnx"]).read_bytes() for row in first] != recorded
    assert replicate_main(flags) == 0
    again = json.loads((out / "members.json").read_text())
    assert all(row["reused"] for row in again)
    assert [row["sha256"] for row in again] == [row["sha256"] for row in first]
    assert (out / "ensemble.onnx").read_bytes() == ensemble
