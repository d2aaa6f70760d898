"""``chuteflow site onboard`` end to end on a tiny site: a complete bundle, a resume after a
crash mid-training, and bad input that gets one line, exit 2 and no bundle."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chuteflow.cli import main
from tests.onboarding.onboard_site import QUICK, SITE, groups_file, make_site


def _onboard(site: Path, history: Path, out: Path, *extra: str) -> int:
    """``site onboard`` of one site, quick and serial; its exit code."""
    argv = ["site", "onboard", "--site", str(site), "--history", str(history), "--out", str(out)]
    return main([*argv, *QUICK, *extra])


def test_onboard_writes_a_complete_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, history = make_site(tmp_path)
    out = tmp_path / "bundle"
    assert _onboard(site, history, out) == 0
    printed = capsys.readouterr()
    assert f"bundle: {out}" in printed.out
    assert "stage train: done" in printed.err
    assert not out.with_name("bundle.partial").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    for name, digest in manifest["files"].items():  # every file is there, with its hash
        import hashlib

        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    for needed in ("site.yaml", "groups-tiny.npz", "report.md", "policy/members.json"):
        assert needed in manifest["files"]
    assert manifest["selection"]["policy"] in manifest["files"]
    assert set(manifest["stage_seconds"]) == {
        "split",
        "groups",
        "train",
        "select",
        "evaluate",
        "bundle",
    }
    split = manifest["split"]
    assert split["fit"]["last"] < split["validation"]["first"]
    assert split["validation"]["last"] < split["heldout"]["first"] == "2024-02-03"
    assert split["heldout"]["days"] == 7
    groups = manifest["groups"]
    best = max(groups["silhouettes"].values())
    assert groups["silhouettes"][str(groups["k"])] == best
    gate = manifest["gate"]
    assert gate["suites"] == ["history", "group", "spike", "concentration", "drift-50"]
    assert manifest["recommended_policy"] == (
        manifest["selection"]["policy"] if gate["passed"] else "proportional"
    )
    report = (out / "report.md").read_text()
    assert "## Held-out evaluation" in report and "| history |" in report
    # the report names the flags that train the same members on any machine
    trained = manifest["training"]
    flags = report.split("The same members on any machine: `", 1)[1].split("`", 1)[0]
    assert flags.split() == [
        *("--seeds", str(trained["seeds"]), "--episodes", str(trained["episodes"])),
        *("--recipes", ",".join(trained["recipes"]), "--quick"),
    ]
    # what is served is what the selection says: an ensemble's members, or the pick alone
    selection = manifest["selection"]
    kept = selection["ensemble"]["members"]
    assert kept[0] == selection["picked"] and len(kept) <= 2  # --quick: size 2
    top = selection["ensemble_top"]
    assert top is None or (set(top["members"]) != set(kept) and len(top["members"]) <= 2)
    served = json.loads((out / "policy" / "members.json").read_text())
    final = selection["final"]
    ensembles = {"ensemble": selection["ensemble"], "ensemble-top": top}
    names = ensembles[final]["members"] if final in ensembles else [final]
    assert [m["name"] for m in served] == names
    if final in ensembles:  # the served file is that ensemble's bytes
        built = (out / "policy" / f"{final}.onnx").read_bytes()
        assert built == (out / selection["policy"]).read_bytes()
    assert (out / "plots" / "history.png").stat().st_size > 1000
    # the bundle is a site every room can use as it is: groups and guardrails beside the file
    from floor.daytypes import default_groups, site_groups_path
    from floor.scenario import load_scenario
    from floor.site import load_site

    scenario = load_scenario(out / "site.yaml")
    assert site_groups_path(scenario) == (out / "groups-tiny.npz").resolve()
    assert default_groups(scenario).n_groups == groups["k"]
    assert load_site(scenario).guardrails.version == "tiny-1"


def test_onboard_resumes_after_a_crash_mid_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, history = make_site(tmp_path)
    out = tmp_path / "bundle"
    partial = tmp_path / "bundle.partial"
    argv = [
        sys.executable, "-m", "chuteflow.cli", "site", "onboard", "--site", str(site),
        "--history", str(history), "--out", str(out), *QUICK, "--episodes", "30",
    ]  # fmt: skip
    env = {**os.environ, "CHUTEFLOW_PROGRESS": "0"}
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    first = partial / "candidates" / "marl-s1" / "training_curve.json"
    try:
        deadline = time.monotonic() + 120
        while not first.is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.is_file(), "the first member never finished"
    finally:
        process.send_signal(signal.SIGKILL)  # a crash: no cleanup of any kind
        process.wait(timeout=30)
        assert process.stderr is not None
        process.stderr.close()
    journal = json.loads((partial / "journal.json").read_text())
    assert set(journal["stages"]) == {"split", "groups"}, "killed after training finished"
    before = first.stat().st_mtime_ns
    args = ["--episodes", "30"]
    assert _onboard(site, history, out, *args) == 0
    printed = capsys.readouterr()
    assert "stage split: done before, skipped (journal)" in printed.err
    assert "stage groups: done before, skipped (journal)" in printed.err
    assert "resumed: skipped split, groups" in printed.out
    # the plan is said, and where it came from: a budget-sized one depends on the machine
    assert "train: 2 seed(s) x 30 episodes of marl, drmarl-mixture (pinned by" in printed.err
    # the finished members are reused before the fan-out, so its progress counts only the rest
    reused = re.search(r"train: (\d) of 4 members finished before \(same settings\), reused; "
                       r"(\d) to train", printed.err)  # fmt: skip
    assert reused is not None, printed.err
    assert int(reused[1]) >= 1 and int(reused[1]) + int(reused[2]) == 4
    assert (out / "candidates" / "marl-s1" / "training_curve.json").stat().st_mtime_ns == before
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resumed_stages"] == ["split", "groups"]


def _bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], site: Path, history: Path, *extra: str
) -> str:
    out = tmp_path / "bundle"
    assert _onboard(site, history, out, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("chuteflow: "), err
    assert not out.exists() and not out.with_name("bundle.partial").exists()
    return err[0]


def test_bad_input_gets_one_line_and_leaves_no_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, history = make_site(tmp_path / "good")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    assert "not valid YAML" in _bad(tmp_path, capsys, broken, history)

    impossible = tmp_path / "impossible.yaml"
    impossible.write_text(
        SITE.replace("min_chutes_per_destination: 0", "min_chutes_per_destination: 2")
    )
    assert "guaranteed chutes exceed eject_chutes" in _bad(tmp_path, capsys, impossible, history)

    gap = tmp_path / "gap"
    shutil.copytree(history, gap)
    (gap / "2024-01-10.csv").unlink()
    assert "gap in history: 1 day(s) missing" in _bad(tmp_path, capsys, site, gap)

    duplicate = tmp_path / "duplicate"
    shutil.copytree(history, duplicate)
    shutil.copyfile(duplicate / "2024-01-10.csv", duplicate / "2024-01-10-again.csv")
    assert "duplicate day 2024-01-10" in _bad(tmp_path, capsys, site, duplicate)

    unknown = tmp_path / "unknown"
    shutil.copytree(history, unknown)
    day = unknown / "2024-01-05.csv"
    day.write_text(day.read_text().replace(",D3\n", ",X99\n", 1))
    assert "X99" in _bad(tmp_path, capsys, site, unknown)

    short = tmp_path / "short"
    short.mkdir()
    for path in sorted(history.glob("*.csv"))[:20]:
        shutil.copyfile(path, short / path.name)
    message = _bad(tmp_path, capsys, site, short)
    assert "too little history for the split: 6 fit days before the last 2 weeks" in message

    assert "not a folder of day files" in _bad(tmp_path, capsys, site, tmp_path / "nowhere")
    assert "unknown recipe 'drmarl-best'" in _bad(
        tmp_path, capsys, site, history, "--recipes", "marl,drmarl-best"
    )
    assert "--lr-final must be in (0, 1], got 0" in _bad(
        tmp_path, capsys, site, history, "--lr-final", "0"
    )

    late = tmp_path / "late"  # an event after the shift: the day reader would refuse the day
    shutil.copytree(history, late)
    day = late / "2024-01-05.csv"
    day.write_text(day.read_text() + "2024-01-05T10:00:05Z,late-1,D1\n")  # shift 07:00-10:00
    assert "events outside the shift" in _bad(tmp_path, capsys, site, late)


def test_an_out_folder_that_is_not_this_runs_bundle_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, history = make_site(tmp_path / "good")
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    assert _onboard(site, history, out) == 2
    assert "already exists and is not a bundle" in capsys.readouterr().err
    (out / "manifest.json").write_text('{"inputs": "another run"}\n')
    assert _onboard(site, history, out) == 2
    assert "a bundle of other inputs or options" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "notes.txt"]
    assert not out.with_name("bundle.partial").exists()


def test_register_without_a_broker_fails_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, history = make_site(tmp_path / "good")
    out = tmp_path / "bundle"
    dead = ["--register", "--bootstrap", "127.0.0.1:9"]  # the discard port: nothing answers
    assert _onboard(site, history, out, *dead) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("chuteflow: ") and "127.0.0.1:9" in err[0], err
    assert not out.exists() and not out.with_name("bundle.partial").exists()


def test_a_second_run_on_a_bundle_being_written_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two runs on one bundle would interleave journals and candidates: the second one is one
    line and exit 2 while the first holds the bundle, and runs once the first is gone."""
    from onboarding.pipeline import bundle_lock

    site, history = make_site(tmp_path)
    out = tmp_path / "bundle"
    with bundle_lock(out):  # a run in progress (flock: another open file, so it conflicts)
        assert _onboard(site, history, out) == 2
        err = capsys.readouterr().err
        assert f"another onboarding (pid {os.getpid()}) is writing this bundle" in err
        assert len(err.strip().splitlines()) == 1
        assert not out.exists() and not out.with_name("bundle.partial").exists()
    assert _onboard(site, history, out) == 0
    assert (out / "manifest.json").is_file()


def test_snapshots_and_lr_final_shape_only_the_drmarl_candidates(tmp_path: Path) -> None:
    site, history = make_site(tmp_path)
    out = tmp_path / "bundle"
    assert _onboard(site, history, out, "--snapshots", "2", "--lr-final", "0.5") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["training"]["snapshots"], manifest["training"]["lr_final"]) == (2, 0.5)
    for member in ("drmarl-mixture-s1", "drmarl-mixture-s2"):
        settings = json.loads((out / "candidates" / member / "settings.json").read_text())
        assert (settings["snapshots"], settings["lr_final"]) == (2, 0.5)
        assert len(list((out / "candidates" / member / "snapshots").glob("*.onnx"))) == 2
    assert not (out / "candidates" / "marl-s1" / "snapshots").exists()  # MARL: as before
    marl = json.loads((out / "candidates" / "marl-s1" / "settings.json").read_text())
    assert marl["lr_final"] == 1.0
    # the held-out evaluation ran the served file: a snapshot ensemble loads and decides
    rows = json.loads((out / "evaluation" / "history.json").read_text())
    assert any(r["policy"] == "learned" for r in rows)


def test_supplied_groups_replace_the_fitted_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--groups``: the bundle's groups are the file's bytes, training and every group suite
    use its groups, and the report says they were not fitted."""
    site, history = make_site(tmp_path)
    labels = [["2024-01-01", "2024-01-08"], ["2024-01-02"], ["2024-01-03"], ["2024-01-04"]]
    supplied = groups_file(tmp_path / "mine.npz", labels)
    out = tmp_path / "bundle"
    assert _onboard(site, history, out, "--groups", str(supplied)) == 0
    assert "groups: k = 4 by supplied (--groups mine.npz" in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["groups"]["k"] == 4 and manifest["groups"]["silhouettes"] == {}
    assert (out / "groups-tiny.npz").read_bytes() == supplied.read_bytes()
    report = (out / "report.md").read_text()
    assert "4 groups, supplied (--groups mine.npz" in report and "| k | silhouette |" not in report
    assert "Groups were supplied (none of their days in the validation" in report
    rows = json.loads((out / "evaluation" / "group.json").read_text())
    assert {r["group"] for r in rows} == {0, 1, 2, 3}  # the suites ran on the file's groups
    member = json.loads((out / "candidates" / "drmarl-mixture-s1" / "settings.json").read_text())
    assert Path(member["scenario"]).parent.name == "bundle.partial"  # trained beside them
    # the same run without --groups is another run: its journal key differs
    assert _onboard(site, history, out) == 2
    assert "a bundle of other inputs or options" in capsys.readouterr().err


def test_supplied_groups_that_do_not_fit_are_one_line_and_no_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, history = make_site(tmp_path / "good")
    late = groups_file(tmp_path / "late.npz", [["2024-01-02"], ["2024-01-20", "2024-01-28"]])
    message = _bad(tmp_path, capsys, site, history, "--groups", str(late))
    assert message.startswith(f"chuteflow: {late}: groups fitted on 1 day(s) from 2024-01-28")
    assert "inside the validation and held-out weeks (from 2024-01-27)" in message
    narrow = groups_file(tmp_path / "narrow.npz", [["2024-01-02"], ["2024-01-03"]], 7)
    assert f"{narrow}: groups for 'tiny' have shape (6, 7), scenario 'tiny' needs (6, 8)" in _bad(
        tmp_path, capsys, site, history, "--groups", str(narrow)
    )
    junk = tmp_path / "junk.npz"
    junk.write_text("not numpy\n")
    assert "not a day-type groups file" in _bad(
        tmp_path, capsys, site, history, "--groups", str(junk)
    )
    twice = ["--site", str(site), "--history", str(history), "--out", str(tmp_path / "b2")]
    assert "--groups supplies one site's groups" in _bad(
        tmp_path, capsys, site, history, "--groups", str(late), *twice
    )
