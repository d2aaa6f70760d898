"""``chuteflow site synth``: deterministic bytes from a seed, parameters checked, and the sites
it makes (fewer chutes than destinations; a shift and interval unlike both built-ins) load
and simulate a day through ``chuteflow simulate --scenario PATH``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from chuteflow.cli import main
from floor.site_file import load_site_file


def _synth(out: Path, *extra: str) -> int:
    return main(
        [
            "site",
            "synth",
            "--out",
            str(out),
            "--destinations",
            "24",
            "--chutes",
            "12",
            "--shift-hours",
            "6",
            "--interval-minutes",
            "20",
            "--daily-volume",
            "5000",
            "--years",
            "0.03",
            *extra,
        ]
    )


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet"])
def test_same_seed_same_bytes(tmp_path: Path, fmt: str) -> None:
    assert _synth(tmp_path / "a", "--seed", "4", "--format", fmt) == 0
    assert _synth(tmp_path / "b", "--seed", "4", "--format", fmt) == 0
    assert _synth(tmp_path / "c", "--seed", "5", "--format", fmt) == 0
    first = _digest(tmp_path / "a")
    assert len(first) == 2 + 11  # site.yaml, synth.json, round(365 * 0.03) day files
    assert first == _digest(tmp_path / "b")
    other = _digest(tmp_path / "c")
    assert other["history/2023-01-02." + fmt] != first["history/2023-01-02." + fmt]


def test_a_rerun_replaces_the_history_and_refuses_a_foreign_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shorter synth over a longer one used to keep the old extra days (and ``site check``
    called the mixed history usable): the folder is now the second run's alone."""
    out = tmp_path / "site"
    assert _synth(out, "--seed", "4") == 0
    assert _synth(out, "--seed", "5", "--years", "0.01") == 0
    alone = tmp_path / "alone"
    assert _synth(alone, "--seed", "5", "--years", "0.01") == 0
    assert _digest(out) == _digest(alone)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "2023-01-02.csv").write_text("someone's day file\n")
    capsys.readouterr()
    assert _synth(foreign) == 2
    assert "did not write" in capsys.readouterr().err
    assert [p.name for p in foreign.iterdir()] == ["2023-01-02.csv"]


def test_seasonality_scales_the_calendar(tmp_path: Path) -> None:
    """Weekly swing: Monday over Sunday volume grows with --seasonality (same seed)."""
    ratios = []
    for s in ("0", "2"):
        assert _synth(tmp_path / s, "--seasonality", s, "--years", "0.2") == 0
        entries = json.loads((tmp_path / s / "synth.json").read_text())["entries"]
        volume = {w: [e["volume"] for e in entries if e["weekday"] == w] for w in ("Mon", "Sun")}
        ratios.append(sum(volume["Mon"]) / sum(volume["Sun"]))
    assert ratios[0] < 1.1 < 1.3 < ratios[1], ratios


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--shift-hours", "7", "--interval-minutes", "45"], "--shift-hours: 7 h is not a whole"),
        (["--chutes", "1", "--daily-volume", "90000"], "eject_chutes: 1 chutes x 20/min"),
        (["--interval-minutes", "0.7"], "--interval-minutes: must be a multiple of 0.5"),
    ],
)
def test_bad_parameters_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert _synth(tmp_path / "x", *flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "x").exists()  # refused before anything is written


@pytest.mark.parametrize(
    ("destinations", "chutes", "hours", "minutes"),
    [
        ("24", "12", "6", "20"),  # fewer chutes than destinations
        (
            "30",
            "45",
            "9",
            "15",
        ),  # shift and interval unlike small (5 h, 30 min), large (11 h, 5 min)
    ],
)
def test_synth_sites_simulate_a_day(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    destinations: str,
    chutes: str,
    hours: str,
    minutes: str,
) -> None:
    out = tmp_path / "site"
    code = main(
        [
            "site",
            "synth",
            "--out",
            str(out),
            "--destinations",
            destinations,
            "--chutes",
            chutes,
            "--shift-hours",
            hours,
            "--interval-minutes",
            minutes,
            "--daily-volume",
            "8000",
            "--years",
            "0.01",
            "--seed",
            "9",
        ]
    )
    assert code == 0
    site = load_site_file(out / "site.yaml")
    assert site.scenario.n_destinations == int(destinations)
    assert site.scenario.eject_chutes == int(chutes)
    assert site.scenario.n_intervals == round(float(hours) * 60 / float(minutes))
    day = sorted((out / "history").iterdir())[-1]
    capsys.readouterr()
    args = ["simulate", "--scenario", str(out / "site.yaml"), "--day", str(day)]
    assert main([*args, "--policy", "proportional", "--json"]) == 0
    kpis = json.loads(capsys.readouterr().out)
    rows = len(day.read_text().splitlines()) - 1
    assert kpis["sorted"] > 0.5 * rows
    assert kpis["sorted"] + kpis["unsorted"] == rows
