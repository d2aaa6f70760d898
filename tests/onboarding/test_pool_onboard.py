"""``scripts/pool_onboard.py``: two finished quick bundles of one site with other recipes,
pooled and selected as one run; bundles of other days are refused."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from chuteflow.cli import main
from tests.onboarding.onboard_site import QUICK, make_site

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from pool_onboard import main as pool_main


def _onboard(site: Path, history: Path, out: Path, *extra: str) -> list[str]:
    flags = ["--site", str(site), "--history", str(history), "--out", str(out), *QUICK, *extra]
    assert main(["site", "onboard", *flags]) == 0
    return flags


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_runs_pooled_are_selected_as_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, history = make_site(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    flags = _onboard(site, history, a, "--recipes", "marl,drmarl-mixture")
    _onboard(site, history, b, "--recipes", "marl,drmarl-rule")
    out = tmp_path / "pool"
    at = flags.index("--out") + 1
    assert pool_main([str(a), f"{b}:b", "--", *flags[:at], str(out), *flags[at + 1 :]]) == 0
    err = capsys.readouterr().err
    assert "kept once" in err  # b's MARL members are a's bytes (same settings and seeds)
    manifest = json.loads((out / "manifest.json").read_text())
    scored = set(manifest["selection"]["scores"])
    assert {"marl-s1", "marl-s2", "drmarl-mixture-s1", "drmarl-mixture-s2"} <= scored
    assert {"drmarl-rule-b-s1", "drmarl-rule-b-s2"} <= scored  # b's own, renamed
    assert not {"marl-b-s1", "marl-b-s2"} & scored
    assert _digest(out / "candidates" / "drmarl-rule-b-s1" / "drmarl-tiny.onnx") == _digest(
        b / "candidates" / "drmarl-rule-s1" / "drmarl-tiny.onnx"
    )
    assert manifest["resumed_stages"] == ["split", "groups", "train"]
    served = json.loads((out / "policy" / "members.json").read_text())
    for member in served:  # what is served is pooled bytes
        assert _digest(out / member["onnx"]) == member["sha256"]


def test_bundles_of_other_days_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, history = make_site(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    flags = _onboard(site, history, a)
    _onboard(site, history, b, "--validation-weeks", "2")  # another split, other days
    out = tmp_path / "pool"
    at = flags.index("--out") + 1
    pooled = [*flags[:at], str(out), *flags[at + 1 :]]
    assert pool_main([str(a), f"{b}:b", "--", *pooled]) == 2
    assert "differ" in capsys.readouterr().err
    assert not out.exists() and not out.with_name("pool.partial").exists()
    # flags that are not the first bundle's: refused before anything is written
    assert pool_main([str(a), "--", *pooled, "--ensemble-size", "3"]) == 2
    assert "give the first bundle's flags" in capsys.readouterr().err
    assert not out.with_name("pool.partial").exists()
