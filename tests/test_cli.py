"""The chuteflow command: simulate on both scenarios, day files, clear errors, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chuteflow.cli import main

DAYS = Path(__file__).parent / "fixtures" / "days"
KEYS = {
    "inducted",
    "sorted",
    "recirculated",
    "recirculation_rate",
    "recirculation_amount",
    "throughput_per_hour",
    "unsorted",
    "chute_moves",
}


def _simulate(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, float]:
    assert main(["simulate", *args, "--json"]) == 0
    result: dict[str, float] = json.loads(capsys.readouterr().out)
    return result


@pytest.mark.parametrize("scenario", ["small", "large"])
def test_simulate_a_group_day_is_deterministic(
    scenario: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _simulate(capsys, "--scenario", scenario, "--group", "2", "--seed", "4")
    again = _simulate(capsys, "--scenario", scenario, "--group", "2", "--seed", "4")
    other = _simulate(capsys, "--scenario", scenario, "--group", "2", "--seed", "5")
    assert KEYS.issubset(first)
    assert first == again
    assert first != other
    assert first["inducted"] == first["sorted"] + first["unsorted"]
    assert first["inducted"] >= 1


def test_simulate_plays_a_day_file(capsys: pytest.CaptureFixture[str]) -> None:
    good = sorted(p for p in DAYS.glob("good*.csv*"))
    assert good, "fixture day files missing"
    kpis = _simulate(capsys, "--scenario", "small", "--day", str(good[0]), "--seed", "1")
    assert kpis["inducted"] > 0


def test_adaptive_policy_beats_the_static_plan_on_a_small_day(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ("--scenario", "small", "--group", "3", "--seed", "9")
    static = _simulate(capsys, *args, "--policy", "static")
    lookahead = _simulate(capsys, *args, "--policy", "lookahead")
    assert lookahead["recirculation_rate"] < static["recirculation_rate"]


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--scenario", "nowhere", "--group", "0"],
        ["simulate", "--scenario", "small", "--group", "99"],
        ["simulate", "--scenario", "small", "--group", "0", "--policy", "magic"],
        ["simulate", "--scenario", "small", "--day", "/nonexistent/day.csv"],
        ["evaluate", "--scenario", "small", "--groups", "0,x"],
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("chuteflow: ")
    assert "\n" not in err and "Traceback" not in err


def test_bad_day_file_error_names_file_and_line(capsys: pytest.CaptureFixture[str]) -> None:
    bad = sorted(DAYS.glob("unknown_destination.csv"))
    assert bad
    assert main(["simulate", "--scenario", "small", "--day", str(bad[0])]) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad[0].name) in err and ":" in err


def test_contracts_export_writes_schemas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["contracts", "export", str(tmp_path)]) == 0
    from contracts import EVENT_TYPES

    assert len(list(tmp_path.glob("*.schema.json"))) == len(EVENT_TYPES)
