"""Day files: the documented CSV format, exact round trips, one-line errors with line numbers."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from chuteflow.cli import days
from floor.daytypes import DayTypeGroups, default_groups
from floor.errors import ChuteflowError
from floor.scenario import Scenario, load_scenario
from twin.dayfile import DayFileError, read_day_csv, write_day_csv
from twin.days_cli import DaysCommandError
from twin.groups import sample_day
from twin.history import generate_history, to_demand

FIXTURES = Path(__file__).parent.parent / "fixtures" / "days"


@pytest.fixture(scope="module")
def small() -> Scenario:
    return load_scenario("small")


def test_good_fixture_reads_packages_in_order(small: Scenario) -> None:
    day = read_day_csv(FIXTURES / "good.csv", small)
    assert day.total == 5 and day.label.endswith("good.csv")
    assert day.day_start.isoformat() == "2025-01-06T06:00:00+00:00"
    packages = day.packages
    assert packages is not None
    assert packages.package_id == ("P1", "P2", "P3", "P4", "P5")
    assert packages.tick.tolist() == [0, 0, 62, 270, 599]
    assert packages.offset_seconds[3] == pytest.approx(2 * 3600 + 15 * 60 + 0.25)
    assert [small.destinations[d] for d in packages.destination] == [
        "D01",
        "D02",
        "D01",
        "D20",
        "D07",
    ]
    assert np.allclose(day.expected_share.sum(axis=1), 1.0)


def test_extra_columns_in_any_order_are_ignored(small: Scenario) -> None:
    day = read_day_csv(FIXTURES / "good_extra_columns.csv", small)
    assert day.interval_arrivals()[0, 2] == 1 and day.interval_arrivals()[1, 2] == 1
    assert day.interval_arrivals()[0, 3] == 1 and day.total == 3


BAD_FILES = [
    ("missing_column.csv", 1, "missing column 'destination'"),
    ("unknown_destination.csv", 4, "unknown destination 'D999'"),
    ("malformed_timestamp.csv", 3, "malformed timestamp '2025-01-06T06:0x:04Z'"),
    ("non_utc_timestamp.csv", 3, "timestamp '2025-01-06T08:00:05+02:00' is not UTC"),
    ("naive_timestamp.csv", 3, "timestamp '2025-01-06T06:00:05' has no UTC offset"),
    ("out_of_order.csv", 5, "event_time 2025-01-06T06:09:59Z earlier than the row before"),
    ("empty.csv", 1, "empty file: no header and no rows"),
    ("header_only.csv", 2, "no rows after the header"),
    ("duplicate_package_id.csv", 4, "duplicate package id 'P1'"),
    ("outside_day_window.csv", 3, "event at 2025-01-06T11:00:00Z outside the day window"),
    ("short_row.csv", 3, "expected at least 3 fields, got 2"),
]


@pytest.mark.parametrize(("name", "line", "message"), BAD_FILES)
def test_bad_file_names_file_line_and_problem(
    small: Scenario, name: str, line: int, message: str
) -> None:
    path = FIXTURES / name
    with pytest.raises(DayFileError) as caught:
        read_day_csv(path, small)
    error = caught.value
    assert isinstance(error, ChuteflowError)
    assert error.line == line
    assert str(error).startswith(f"{path}:{line}: {message}")
    assert "\n" not in str(error)


def test_missing_file_is_a_day_file_error(small: Scenario, tmp_path: Path) -> None:
    with pytest.raises(DayFileError, match="no such day file"):
        read_day_csv(tmp_path / "nope.csv", small)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_history_day_round_trip_gives_identical_arrivals(
    small: Scenario, tmp_path: Path, suffix: str
) -> None:
    day = next(generate_history(small, date(2024, 12, 16), 1, seed=9))
    path = write_day_csv(day, tmp_path / f"2024-12-16{suffix}", seed=4, scenario=small)
    read = read_day_csv(path, small)
    assert np.array_equal(read.arrivals, to_demand(day, small, seed=4).arrivals)
    assert np.array_equal(read.interval_arrivals(), day.counts)
    assert read.day_start.date() == date(2024, 12, 16)
    assert read.packages is not None
    assert len(set(read.packages.package_id)) == day.volume
    again = write_day_csv(day, tmp_path / f"again{suffix}", seed=4, scenario=small)
    assert again.read_bytes() == path.read_bytes()  # byte-for-byte deterministic


def test_package_level_day_round_trips_its_packages(small: Scenario, tmp_path: Path) -> None:
    first = read_day_csv(FIXTURES / "good.csv", small)
    path = write_day_csv(first, tmp_path / "copy.csv")
    second = read_day_csv(path, small)
    assert first.packages is not None and second.packages is not None
    assert second.packages.package_id == first.packages.package_id
    assert np.array_equal(second.packages.offset_seconds, first.packages.offset_seconds)
    assert np.array_equal(second.arrivals, first.arrivals)


def test_sampled_day_round_trip_and_group_share(small: Scenario, tmp_path: Path) -> None:
    groups = default_groups(small)
    demand = sample_day(groups, 2, small, seed=1)
    path = write_day_csv(demand, tmp_path / "sampled.csv", seed=0)
    read = read_day_csv(path, small, groups=groups)
    assert np.array_equal(read.arrivals, demand.arrivals)
    assert any(np.allclose(read.expected_share, groups.expected_share(g)) for g in range(9))


def test_writing_a_history_day_needs_its_scenario(small: Scenario, tmp_path: Path) -> None:
    day = next(generate_history(small, date(2024, 1, 1), 1, seed=0))
    with pytest.raises(ValueError, match="scenario"):
        write_day_csv(day, tmp_path / "x.csv")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chuteflow")
    days.register(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(*argv: str) -> int:
    args = _parser().parse_args(list(argv))
    code: int = args.func(args)
    return code


def test_cli_generate_then_fit_groups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    days = tmp_path / "days"
    assert (
        _run(
            "days",
            "generate",
            "--scenario",
            "small",
            "--start",
            "2024-11-20",
            "--days",
            "14",
            "--out",
            str(days),
            "--seed",
            "5",
            "--gzip",
        )
        == 0
    )
    files = sorted(p.name for p in days.glob("*.csv.gz"))
    assert len(files) == 14 and files[0] == "2024-11-20.csv.gz"
    manifest = json.loads((days / "manifest.json").read_text())
    assert len(manifest["entries"]) == 14 and manifest["seed"] == 5
    assert {e["date"] for e in manifest["entries"] if e["is_promo"]} == set(manifest["promo_days"])
    out = tmp_path / "groups.npz"
    assert (
        _run(
            "days",
            "fit-groups",
            "--scenario",
            "small",
            "--days",
            str(days),
            "--groups",
            "3",
            "--out",
            str(out),
            "--seed",
            "0",
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "volume_mean" in printed and "wrote 3 groups from 14 days" in printed
    groups = DayTypeGroups.load(out)
    assert groups.n_groups == 3 and sum(len(m) for m in groups.members) == 14
    assert "2024-11-20" in {x for m in groups.members for x in m}


def test_cli_generate_again_replaces_the_days(tmp_path: Path) -> None:
    """A second ``days generate`` into the same folder is that run's days alone (it used to
    leave the first run's extra days, read back as one history); another command's folder is
    refused and left as it was."""
    days = tmp_path / "days"
    flags = ("days", "generate", "--scenario", "small", "--start", "2024-11-20")
    assert _run(*flags, "--days", "5", "--out", str(days)) == 0
    assert _run(*flags, "--days", "2", "--out", str(days), "--gzip") == 0
    assert sorted(p.name for p in days.iterdir()) == [
        "2024-11-20.csv.gz",
        "2024-11-21.csv.gz",
        "manifest.json",
    ]
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text('{"hashes": {}}')
    with pytest.raises(ChuteflowError, match="did not write"):
        _run(*flags, "--days", "1", "--out", str(bundle))
    assert [p.name for p in bundle.iterdir()] == ["manifest.json"]


def test_cli_fit_groups_reports_the_bad_file(tmp_path: Path) -> None:
    days = tmp_path / "days"
    days.mkdir()
    (days / "2025-01-06.csv").write_text((FIXTURES / "good.csv").read_text())
    (days / "2025-01-07.csv").write_text((FIXTURES / "unknown_destination.csv").read_text())
    with pytest.raises(DayFileError) as caught:
        _run(
            "days",
            "fit-groups",
            "--scenario",
            "small",
            "--days",
            str(days),
            "--groups",
            "1",
            "--out",
            str(tmp_path / "g.npz"),
        )
    assert str(caught.value) == f"{days / '2025-01-07.csv'}:4: unknown destination 'D999'"


@pytest.mark.parametrize(
    "argv",
    [
        ("days", "fit-groups", "--scenario", "small", "--days", "/nonexistent", "--out", "g.npz"),
        (
            "days",
            "generate",
            "--scenario",
            "nowhere",
            "--start",
            "2024-01-01",
            "--days",
            "1",
            "--out",
            "x",
        ),
        (
            "days",
            "generate",
            "--scenario",
            "small",
            "--start",
            "01/02/2024",
            "--days",
            "1",
            "--out",
            "x",
        ),
    ],
)
def test_cli_usage_errors_are_chuteflow_errors(argv: tuple[str, ...]) -> None:
    with pytest.raises(DaysCommandError):
        _run(*argv)
