"""A fleet in one run: ``site onboard --fleet`` (or repeated --site/--history/--out) onboards
several sites, each bundle complete and atomic; a rerun reuses finished bundles; the same
fleet on a local Ray (tasks of both sites in one job) gives the same policy bytes as one
after the other in this process; a bad fleet is one line, exit 2, nothing written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chuteflow.cli import main
from tests.onboarding.onboard_site import QUICK, SITE, groups_file, make_site

OTHER = (
    SITE.replace("name: tiny", "name: tiny-b")
    .replace("site_id: site-tiny", "site_id: site-tiny-b")
    .replace("day_hours: 3", "day_hours: 4")
    .replace("interval_minutes: 30", "interval_minutes: 20")
)
"""A second site: another name and id, a longer shift in shorter intervals."""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fleet file of two tiny sites (paths relative to it) and their histories."""
    root = tmp_path_factory.mktemp("fleet")
    make_site(root / "a", days=36)
    make_site(root / "b", days=36, text=OTHER)
    entries = [
        {"site": f"{s}/tiny.yaml", "history": f"{s}/history", "out": f"bundles/{s}"}
        for s in ("a", "b")
    ]
    path = root / "fleet.yaml"
    path.write_text(json.dumps({"sites": entries}))  # JSON is YAML
    return path


def _policies(bundle: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((bundle / "policy").glob("*.onnx"))}


def _run_fleet(fleet_file: Path, bundles: Path, *extra: str) -> list[Path]:
    """Onboard the fleet into ``bundles`` (a copy of the fleet file pointing there)."""
    body = json.loads(fleet_file.read_text())
    for entry in body["sites"]:
        name = Path(entry["out"]).name
        entry["out"] = str(bundles / name)
        for key in ("site", "history"):
            entry[key] = str(fleet_file.parent / entry[key])
    copy = bundles.with_suffix(".yaml")
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(json.dumps(body))
    assert main(["site", "onboard", "--fleet", str(copy), *extra]) == 0
    return [Path(e["out"]) for e in body["sites"]]


def test_a_fleet_onboards_every_site_and_a_rerun_reuses_the_bundles(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["site", "onboard", "--fleet", str(fleet), *QUICK]) == 0
    printed = capsys.readouterr()
    outs = [fleet.parent / "bundles" / s for s in ("a", "b")]
    for out, name, hours in zip(outs, ("tiny", "tiny-b"), (3, 4), strict=True):
        assert f"bundle: {out}" in printed.out
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["site"] == name and set(manifest["files"]) >= {"site.yaml", "report.md"}
        assert f"day_hours: {hours}" in (out / "site.yaml").read_text()
        assert manifest["selection"]["policy"] in manifest["files"]
        assert not out.with_name(out.name + ".partial").exists()
    assert printed.out.count("stage times: split") == 2
    # bench onboard: where each site's time went, from its manifest
    bench = ["bench", "onboard", "--bundle", str(outs[0]), "--bundle", str(outs[1])]
    assert main([*bench, "--json"]) == 0
    timings = json.loads(capsys.readouterr().out)["bundles"]
    assert [t["site"] for t in timings] == ["tiny", "tiny-b"]
    for out, timing in zip(outs, timings, strict=True):
        manifest = json.loads((out / "manifest.json").read_text())
        stages = {r["stage"]: r["seconds"] for r in timing["stages"]}
        assert list(stages) == ["split", "groups", "train", "select", "evaluate", "bundle"]
        for stage, seconds in manifest["stage_seconds"].items():
            assert stages[stage] == round(seconds, 1)
        assert sum(r["share"] for r in timing["stages"]) == pytest.approx(1.0, abs=0.01)
        assert timing["training"]["members"] == 4  # --quick: 2 recipes x 2 seeds
    assert main(bench) == 0
    table = capsys.readouterr().out
    assert table.count("  train ") == 2 and "training: 4 members x 4 episodes" in table
    assert main(["bench", "onboard", "--bundle", str(fleet.parent / "a")]) == 2
    assert "not a finished bundle" in capsys.readouterr().err
    before = {o: (o / "manifest.json").stat().st_mtime_ns for o in outs}
    # rerun: both bundles are of the same inputs, so both are reused, nothing rebuilt
    assert main(["site", "onboard", "--fleet", str(fleet), *QUICK]) == 0
    printed = capsys.readouterr()
    assert printed.err.count("bundle: done before (same inputs), reused") == 2
    assert {o: (o / "manifest.json").stat().st_mtime_ns for o in outs} == before

    # the same two sites as repeated triples: the same policies (another place, same bytes)
    triples = []
    for s in ("a", "b"):
        root = fleet.parent / s
        out = fleet.parent / "triples" / s
        triples += ["--site", str(root / "tiny.yaml"), "--history", str(root / "history")]
        triples += ["--out", str(out)]
    assert main(["site", "onboard", *triples, *QUICK]) == 0
    for s, out in zip(("a", "b"), outs, strict=True):
        assert _policies(fleet.parent / "triples" / s) == _policies(out)


@pytest.mark.slow
def test_a_fleet_on_local_ray_gives_the_same_policies_as_serial(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray")
    serial = _run_fleet(fleet, tmp_path / "serial", *QUICK)
    on_ray = _run_fleet(fleet, tmp_path / "ray", "--quick", "--ray", "local", "--workers", "2")
    printed = capsys.readouterr()
    assert "fan-out: ray (local, 2 CPUs)" in printed.err
    for one, other in zip(serial, on_ray, strict=True):
        assert _policies(one) and _policies(one) == _policies(other)
        manifest = json.loads((other / "manifest.json").read_text())
        assert manifest["fanout"] == "ray (local, 2 CPUs), shared by 2 sites"
        a, b = (json.loads((d / "evaluation" / "history.json").read_text()) for d in (one, other))
        assert a == b


def test_a_fleet_killed_mid_run_resumes_each_site_from_its_own_state(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Serial: site a finishes, site b is killed mid-training; the rerun reuses a's bundle and
    resumes b from its journal and finished member."""
    body = json.loads(fleet.read_text())
    for entry in body["sites"]:
        entry["out"] = str(tmp_path / Path(entry["out"]).name)
        for key in ("site", "history"):
            entry[key] = str(fleet.parent / entry[key])
    copy = tmp_path / "fleet.yaml"
    copy.write_text(json.dumps(body))
    argv = [sys.executable, "-m", "chuteflow.cli", "site", "onboard", "--fleet", str(copy), *QUICK]
    env = {**os.environ, "CHUTEFLOW_PROGRESS": "0"}
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    member = tmp_path / "b.partial" / "candidates" / "marl-s1" / "training_curve.json"
    try:
        deadline = time.monotonic() + 300
        while not member.is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert member.is_file(), "site b's first member never finished"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert (tmp_path / "a" / "manifest.json").is_file() and not (tmp_path / "b").exists()
    a_made = (tmp_path / "a" / "manifest.json").stat().st_mtime_ns
    b_member = member.stat().st_mtime_ns
    assert main(["site", "onboard", "--fleet", str(copy), *QUICK]) == 0
    err = capsys.readouterr().err
    assert "tiny: bundle: done before (same inputs), reused" in err
    assert "tiny-b: stage groups: done before, skipped (journal)" in err
    assert (tmp_path / "a" / "manifest.json").stat().st_mtime_ns == a_made
    finished = tmp_path / "b" / "candidates" / "marl-s1" / "training_curve.json"
    assert finished.stat().st_mtime_ns == b_member  # the finished member was reused
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["resumed_stages"] == [
        "split",
        "groups",
    ]


def _bad(argv: list[str], capsys: pytest.CaptureFixture[str], *unwritten: Path) -> str:
    assert main(["site", "onboard", *argv, *QUICK]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("chuteflow: "), err
    for path in unwritten:
        assert not path.exists() and not path.with_name(path.name + ".partial").exists()
    return err[0]


def test_a_bad_fleet_is_one_line_and_writes_nothing(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = fleet.parent / "a", fleet.parent / "b"
    out_a, out_b = tmp_path / "out-a", tmp_path / "out-b"
    broken = tmp_path / "broken.yaml"
    broken.write_text("sites: [unclosed\n")
    assert "not valid YAML" in _bad(["--fleet", str(broken)], capsys)

    keyless = tmp_path / "keyless.yaml"
    keyless.write_text(json.dumps({"sites": [{"site": str(a / "tiny.yaml"), "bundle": "x"}]}))
    assert "sites[1] needs history, out" in _bad(["--fleet", str(keyless)], capsys)

    one = ["--site", str(a / "tiny.yaml"), "--history", str(a / "history")]
    assert "go in triples" in _bad([*one, "--out", str(out_a), "--out", str(out_b)], capsys)
    assert "leave out --site" in _bad(["--fleet", str(fleet), *one, "--out", str(out_a)], capsys)

    same_out = [*one, "--out", str(out_a), *one, "--out", str(out_a)]
    assert "write the same bundle" in _bad(same_out, capsys, out_a)
    same_site = [*one, "--out", str(out_a), *one, "--out", str(out_b)]
    assert "site id site-tiny is also" in _bad(same_site, capsys, out_a, out_b)

    # the second site's bad history stops the run before the first site's bundle starts
    bad_history = tmp_path / "short"
    bad_history.mkdir()
    for day in sorted((b / "history").glob("*.csv"))[:10]:
        (bad_history / day.name).write_bytes(day.read_bytes())
    argv = [*one, "--out", str(out_a), "--site", str(b / "tiny.yaml")]
    argv += ["--history", str(bad_history), "--out", str(out_b)]
    assert "too little history for the split" in _bad(argv, capsys, out_a, out_b)


def test_a_fleet_entry_may_supply_its_sites_groups(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fleet entry's ``groups:`` reaches that site's check (and only that site's): a file of
    the wrong shape stops the run with one line naming it; a non-path is refused too."""
    from onboarding.fleet import read_fleet

    body = json.loads(fleet.read_text())
    wrong = groups_file(fleet.parent / "b" / "wrong.npz", [["2024-01-02"], ["2024-01-03"]])
    body["sites"][1]["groups"] = "b/wrong.npz"  # tiny-b has 12 intervals, the file 6
    path = fleet.parent / "with-groups.yaml"
    path.write_text(json.dumps(body))
    sites = read_fleet(path)
    assert [s.groups for s in sites] == [None, wrong]
    assert f"{wrong}: groups for 'tiny' have shape (6, 8)" in _bad(["--fleet", str(path)], capsys)
    body["sites"][1]["groups"] = 3
    path.write_text(json.dumps(body))
    assert "sites[2] needs groups as a path" in _bad(["--fleet", str(path)], capsys)
    assert "leave out --site, --history, --out and --groups" in _bad(
        ["--fleet", str(fleet), "--groups", str(wrong)], capsys
    )
