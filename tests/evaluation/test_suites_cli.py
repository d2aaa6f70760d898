"""The CLI side of the suites: ``evaluate --suite``, the oracle-plan rows, the old ``--days``
layout, ``days generate``'s default seed and the fit warning of ``simulate`` and ``replay``."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

from chuteflow.cli import main
from floor.scenario import load_scenario
from twin.dayfile import write_day_csv
from twin.history import generate_history

SMALL = ("--scenario", "small")


def _evaluate(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "eval"
    argv = ["evaluate", *SMALL, "--policies", "static,proportional", "--seeds", "1"]
    assert main([*argv, "--workers", "1", "--out", str(out), *args]) == 0
    return out


def test_evaluate_suites_writes_per_suite_reports_and_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _evaluate(tmp_path, "--suite", "history,drift-100", "--history-days", "3")
    history, drift = out / "history", out / "drift-100"
    for folder in (history, drift):
        for name in ("report.md", "runs.json", "summary.json"):
            assert (folder / name).is_file(), folder / name
    assert (history / "recirculation_by_policy.png").is_file()
    assert (drift / "recirculation_by_group.png").is_file()
    runs = json.loads((history / "runs.json").read_text())
    assert len(runs) == 2 * 3
    assert {r["day"] for r in runs} == {"2025-01-01", "2025-01-02", "2025-01-03"}
    assert {r["group_kind"] for r in runs} == {"nearest"}
    assert len(json.loads((drift / "runs.json").read_text())) == 2 * 9  # 9 groups x 1 seed
    table = (out / "suites.md").read_text()
    assert "| policy | history | drift-100 |" in table
    assert "| static | " in table and "| proportional | " in table
    assert "nearest group" in (history / "report.md").read_text()
    assert "| policy | history | drift-100 |" in capsys.readouterr().out
    assert set(json.loads((out / "suites.json").read_text())) == {"history", "drift-100"}


def test_oracle_plan_adds_a_reference_row_per_policy(tmp_path: Path) -> None:
    out = _evaluate(tmp_path, "--suite", "group", "--groups", "0,1", "--oracle-plan")
    summary = json.loads((out / "group" / "summary.json").read_text())
    assert set(summary) == {
        "static",
        "static (oracle plan)",
        "proportional",
        "proportional (oracle plan)",
    }
    text = (out / "suites.md").read_text()
    main, comparison = text.split("## proportional against each policy, per group")
    table = [line.split(" | ")[0] for line in main.splitlines() if line.startswith("| ")]
    against = [line.split(" | ")[1] for line in comparison.splitlines() if line.startswith("| g")]
    assert against == ["static", "static (oracle plan)", "proportional (oracle plan)"]
    assert table == [
        "| policy",
        "| static",
        "| static (oracle plan)",
        "| proportional",
        "| proportional (oracle plan)",
    ]


def test_the_old_days_flag_keeps_its_layout(tmp_path: Path) -> None:
    out = _evaluate(tmp_path, "--days", "spike", "--groups", "0,1")
    for name in (
        "report.md",
        "runs.json",
        "summary.json",
        "recirculation_by_group.png",
        "spike_day_allocation.png",
    ):
        assert (out / name).is_file(), name
    runs = json.loads((out / "runs.json").read_text())
    assert {r["day_kind"] for r in runs} == {"spike"} and len(runs) == 4
    assert not (out / "suites.md").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--suite", "history,nope"],
        ["--suite", "other", "--other-seeds", "11,2025"],
        ["--suite", "history", "--history-days", "0"],
    ],
)
def test_bad_suites_are_one_line_and_exit_code_2(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate", *SMALL, "--policies", "static", "--out", str(tmp_path), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("chuteflow: ") and "\n" not in err


def test_days_generate_defaults_to_the_sites_own_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "days"
    argv = ["days", "generate", *SMALL, "--start", "2025-01-01", "--days", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    assert json.loads((out / "manifest.json").read_text())["seed"] == 2025
    assert "history seed 2025" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["days", "generate", "--help"])
    assert "2025" in " ".join(capsys.readouterr().out.split())


def _day_file(tmp_path: Path, seed: int) -> Path:
    scenario = load_scenario("small")
    day = next(generate_history(scenario, date(2025, 1, 3), 1, seed))
    return write_day_csv(day, tmp_path / f"seed{seed}.csv", seed=1, scenario=scenario)


def _simulate_err(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["simulate", *SMALL, *args, "--json"]) == 0
    return capsys.readouterr().err


def test_simulate_warns_once_for_a_day_from_another_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = _day_file(tmp_path, 11)
    err = _simulate_err(capsys, "--day", str(other))
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert f"day {other} matches none of the site's groups (fit score" in warnings[0]
    assert "plan-based policies will be told a wrong plan" in warnings[0]
    assert "warning" not in _simulate_err(capsys, "--day", str(_day_file(tmp_path, 2025)))
    assert "warning" not in _simulate_err(capsys, "--group", "2")


def test_replay_warns_for_a_day_from_another_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No broker needed: the Kafka side is stubbed, the warning comes before it runs."""
    import replay.loop
    import stream.clients

    class Stopped(Exception):
        pass

    def stop(*_: object, **__: object) -> SimpleNamespace:
        raise Stopped

    monkeypatch.setattr(stream.clients, "connect_admin", lambda *a, **k: None)
    monkeypatch.setattr(replay.loop, "replay_day", stop)
    from chuteflow.cli import replay as replay_cli

    args = argparse.Namespace(
        scenario="small",
        group=None,
        day=str(_day_file(tmp_path, 12)),
        seed=0,
        site=None,
        speed=None,
        bootstrap=None,
        kafka_config=None,
        timeout_seconds=1.0,
        json=True,
    )
    with pytest.raises(Stopped):
        replay_cli.run(args)
    err = capsys.readouterr().err
    assert err.count("matches none of the site's groups") == 1
