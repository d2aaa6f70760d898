"""Onboarding reads a history as ``site check`` does: the same split (``twin.split``), the same
problems; gaps are refused unless ``--allow-gaps``; a site closed on a weekday is no gap; and
an install without pyarrow (the row reader) sees the same days, counts and split."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from chuteflow.cli import main
from floor.scenario import load_scenario
from onboarding.history import HistoryError, read_history
from onboarding.pipeline import check_inputs
from onboarding.plan import OnboardOptions
from tests.onboarding.onboard_site import make_site
from twin.coverage import check_history


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_site(tmp_path_factory.mktemp("tiny"), days=40)


def test_site_check_and_onboard_split_alike(
    tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, history = tiny
    options = OnboardOptions.quick_run(heldout_weeks=1, validation_weeks=2)
    inputs = check_inputs(site, history, tmp_path / "bundle", options)
    argv = ["site", "check", "--site", str(site), "--history", str(history), "--json"]
    main([*argv, "--heldout-weeks", "1", "--validation-weeks", "2"])  # 40 days: too few for 56
    checked = json.loads(capsys.readouterr().out)["split"]
    onboarded = inputs.split.dates()
    for part in ("fit", "validation", "heldout"):
        for key in ("first", "last", "days"):
            assert onboarded[part][key] == checked[part][key], (part, key)
    assert onboarded["heldout"]["days"] == 7 and onboarded["validation"]["days"] == 14


def test_the_row_reader_sees_what_the_scan_sees(tiny: tuple[Path, Path]) -> None:
    site, history = tiny
    scenario = load_scenario(site)
    scan = check_history(scenario, history, 1, 1, 14)
    rows = check_history(scenario, history, 1, 1, 14, strict=True)
    assert scan.days == rows.days and scan.split == rows.split
    assert scan.problems() == rows.problems() == []
    for a, b in zip(scan.scans, rows.scans, strict=True):
        assert a.day == b.day
        np.testing.assert_array_equal(a.counts, b.counts)


def test_gaps_are_refused_unless_allowed_and_closed_weekdays_are_no_gap(
    tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    site, history = tiny
    scenario = load_scenario(site)
    gap = tmp_path / "gap"
    shutil.copytree(history, gap)
    (gap / "2024-01-10.csv").unlink()
    with pytest.raises(HistoryError, match=r"gap in history: 1 day.*--allow-gaps"):
        read_history(gap, scenario, 1, 1, 14)
    allowed = read_history(gap, scenario, 1, 1, 14, allow_gaps=True)
    assert len(allowed.days) == 39
    assert "2024-01-10" not in [d.day.isoformat() for d in allowed.days]

    closed = tmp_path / "closed-sundays"
    shutil.copytree(history, closed)
    sundays = [p for p in closed.glob("*.csv") if date.fromisoformat(p.name[:10]).weekday() == 6]
    for path in sundays:
        path.unlink()
    read = read_history(closed, scenario, 1, 1, 14)
    assert len(sundays) == 5 and len(read.days) == 35
    assert all(d.day.weekday() != 6 for d in read.days)
