"""``scripts/compare_onboard.py`` on a quick bundle of the tiny site: a policy compared with
itself lies within its own spread on every suite, the ``--draw`` count agrees, and a draw that
names no ``--also`` policy is refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from chuteflow.cli import main
from tests.onboarding.onboard_site import QUICK, make_site

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from compare_onboard import main as compare_main


def test_a_policy_against_itself_and_its_draw(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, history = make_site(tmp_path)
    bundle = tmp_path / "bundle"
    flags = ["--site", str(site), "--history", str(history), "--out", str(bundle), *QUICK]
    assert main(["site", "onboard", *flags]) == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    policy = str(bundle / manifest["selection"]["policy"])
    common = ["--bundle", str(bundle), "--history", str(history), "--sites", "bundle"]
    common += ["--suites", "history,group", "--replicates", "2", "--workers", "1"]
    with pytest.raises(SystemExit) as refused:
        compare_main([*common, "--shipped", policy, "--draw", "nothing"])
    assert refused.value.code == 2
    capsys.readouterr()
    rows = tmp_path / "rows.json"
    args = [*common, "--shipped", policy, "--also", f"same={policy}", "--draw", "same"]
    assert compare_main([*args, "--out", str(rows)]) == 0
    out = capsys.readouterr().out
    assert "2/2 suites within the shipped file's seed spread" in out
    assert "same: 2/2 suites within the same spread." in out
    assert "onboarded: 2/2 suites within the spread of the shipped file and its other" in out
    labels = {row["policy"] for row in json.loads(rows.read_text())}
    assert labels == {"proportional", "shipped", "onboarded", "same"}
