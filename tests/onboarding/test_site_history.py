"""History folders: CSV, gzipped CSV and Parquet read alike; ``site check`` finds gaps,
duplicate days and records, unknown destinations, out-of-shift events and too little history."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from chuteflow.cli import main
from floor.scenario import load_scenario
from twin.coverage import check_history
from twin.dayfile import read_day_csv
from twin.history_files import scan_day_file
from twin.split import MIN_FIT_DAYS, split_history
from twin.synth_site import SynthParams, synth_site

SMALL = dict(destinations=8, chutes=6, shift_hours=4, interval_minutes=30, daily_volume=2000)


@pytest.fixture(scope="module")
def site_130(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic site with 130 days of CSV history (a usable split: 74 fit days before
    the 4 + 4 weeks held out)."""
    out = tmp_path_factory.mktemp("site130")
    synth_site(SynthParams(**SMALL, years=130 / 365, seed=11), out)
    return out


def test_three_formats_load_identically(tmp_path: Path) -> None:
    scans, strict = [], []
    for fmt in ("csv", "csv.gz", "parquet"):
        out = tmp_path / fmt.replace(".", "_")
        synth_site(SynthParams(**SMALL, years=3 / 365, seed=5, file_format=fmt), out)
        scenario = load_scenario(out / "site.yaml")
        files = sorted((out / "history").iterdir())
        assert [f.name for f in files] == [f"2023-01-0{d}.{fmt}" for d in (2, 3, 4)]
        scans.append([scan_day_file(f, scenario) for f in files])
        strict.append([read_day_csv(f, scenario) for f in files])
    for other_scans, other_strict in zip(scans[1:], strict[1:], strict=True):
        for a, b in zip(scans[0], other_scans, strict=True):
            assert a.day == b.day and a.rows == b.rows > 0
            np.testing.assert_array_equal(a.counts, b.counts)
        for a, b in zip(strict[0], other_strict, strict=True):
            np.testing.assert_array_equal(a.arrivals, b.arrivals)
            assert a.packages is not None and b.packages is not None
            assert a.packages.package_id == b.packages.package_id
            np.testing.assert_array_equal(a.packages.offset_seconds, b.packages.offset_seconds)
            assert a.day_start == b.day_start
    # The column-wise scan and the strict row reader agree on every day.
    for scan, demand in zip(scans[0], strict[0], strict=True):
        np.testing.assert_array_equal(scan.counts, demand.interval_arrivals())
        assert scan.rows == int(demand.arrivals.sum())


def test_a_clean_history_is_usable(site_130: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["site", "check", "--site", str(site_130 / "site.yaml")]
    code = main([*args, "--history", str(site_130 / "history"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["problems"]
    assert report["days"] == 130 and report["gaps"] == [] and report["usable"]
    assert report["first"] == "2023-01-02" and report["last"] == "2023-05-11"
    assert report["split"]["heldout"]["days"] == 28
    assert report["split"]["validation"]["days"] == 28
    assert report["split"]["fit"]["days"] == 74


def _rewrite(path: Path, edit: object) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(edit(lines)))  # type: ignore[operator]


def test_site_check_finds_every_injected_problem(
    site_130: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = tmp_path / "history"
    shutil.copytree(site_130 / "history", history)
    for day in ("2023-02-07", "2023-02-08", "2023-03-01"):  # two gaps
        (history / f"{day}.csv").unlink()
    # A duplicate day: the same export twice, once gzipped under another name.
    with gzip.open(history / "copy-of-2023-02-10.csv.gz", "wt") as handle:
        handle.write((history / "2023-02-10.csv").read_text())
    # A duplicate record, an unknown destination, an event after the shift.
    _rewrite(history / "2023-01-05.csv", lambda ls: [*ls[:3], ls[2], *ls[3:]])
    _rewrite(history / "2023-01-06.csv", lambda ls: [*ls[:-1], ls[-1].replace(",D0", ",X9")])
    _rewrite(
        history / "2023-01-09.csv",
        lambda ls: [*ls, "2023-01-09T10:00:05Z,late-1,D01\n"],  # shift is 06:00-10:00
    )
    code = main(["site", "check", "--site", str(site_130 / "site.yaml"), "--history", str(history)])
    err = capsys.readouterr().err
    assert code == 2
    problems = [line for line in err.splitlines() if "warning" not in line]
    assert any(
        "duplicate day 2023-02-10: 2023-02-10.csv, copy-of-2023-02-10.csv.gz" in p for p in problems
    )
    assert any("duplicate records" in p and "2023-01-05.csv (1)" in p for p in problems)
    assert any(
        "unknown destinations" in p and "X9" in p and "2023-01-06.csv" in p for p in problems
    )
    assert any("outside the shift" in p and "2023-01-09.csv (1)" in p for p in problems)
    assert len(problems) == 4, problems
    assert "warning: gaps: 3 missing days in 2 ranges: 2023-02-07..2023-02-08, 2023-03-01" in err


def test_gaps_alone_are_a_warning_and_too_little_history_is_fatal(
    site_130: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = load_scenario(site_130 / "site.yaml")
    history = tmp_path / "history"
    shutil.copytree(site_130 / "history", history)
    (history / "2023-02-20.csv").unlink()
    site = ["site", "check", "--site", str(site_130 / "site.yaml")]
    assert main([*site, "--history", str(history)]) == 0
    assert "warning: gaps: 1 missing days in 1 ranges: 2023-02-20" in capsys.readouterr().err
    for path in sorted(history.iterdir())[:40]:  # 89 days left: fit is too short
        path.unlink()
    coverage = check_history(scenario, history)
    assert not coverage.usable
    assert main([*site, "--history", str(history)]) == 2
    err = capsys.readouterr().err
    assert f"fit days before the last 8 weeks, need >= {MIN_FIT_DAYS}" in err
    assert main([*site, "--history", str(tmp_path / "nowhere")]) == 2
    assert "not a folder of day files" in capsys.readouterr().err


def test_files_that_are_not_read_are_named(
    site_130: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A day exported as ``.CSV``, a zip of days and a month in a subfolder were skipped
    without a word (the history still split and onboarded without those days): ``site check``
    names them, ``--json`` lists them, hidden files aside."""
    history = tmp_path / "history"
    shutil.copytree(site_130 / "history", history)
    (history / "2023-02-20.csv").rename(history / "2023-02-20.CSV")
    (history / "days.zip").write_bytes(b"PK")
    (history / "march").mkdir()
    (history / ".DS_Store").write_bytes(b"")
    site = ["site", "check", "--site", str(site_130 / "site.yaml"), "--history", str(history)]
    assert main(site) == 0  # a gap is a warning
    err = capsys.readouterr().err
    assert "warning: 3 entries not read" in err and "2023-02-20.CSV, days.zip, march/" in err
    assert ".DS_Store" not in err
    assert main([*site, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unread"] == ["2023-02-20.CSV", "days.zip", "march/"]
    # site onboard says it too, before anything runs (here it then stops at a Ray not there)
    onboard = ["site", "onboard", *site[2:], "--out", str(tmp_path / "b"), "--quick"]
    assert main([*onboard, "--allow-gaps", "--ray", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert f"warning: {history}: 3 entries not read" in err, err
    assert err.index("3 entries not read") < err.index("no Ray cluster answers"), err


def test_split_keeps_the_last_weeks_for_judging() -> None:
    start = date(2024, 1, 1)
    days = [start + timedelta(days=k) for k in range(140)]
    split = split_history(days, heldout_weeks=2, validation_weeks=3)
    assert split.heldout == tuple(days[-14:])
    assert split.validation == tuple(days[-35:-14])
    assert split.fit == tuple(days[:-35])
    assert split.usable
    # No overlap and time order: every fit day before every validation day before held-out.
    assert max(split.fit) < min(split.validation) <= max(split.validation) < min(split.heldout)
    # A site closed on Sundays is still judged on every day it operates.
    open_days = [d for d in days if d.weekday() != 6]
    assert split_history(open_days).usable
    # A held-out window without Mondays cannot judge Mondays.
    no_monday = [d for d in days if d.weekday() != 0 or d < days[-28]]
    assert any("has no Mon" in p for p in split_history(no_monday).problems())
