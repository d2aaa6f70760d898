"""The chuteflow command: simulate on both scenarios, day files, clear errors, determinism, and
the installed console script (every verb, its --help, BLAS thread defaults)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


# --- the installed command ---------------------------------------------------------------


def _installed(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``chuteflow`` console script this interpreter's environment installed."""
    from replay.workers import chuteflow_command

    return subprocess.run(
        [chuteflow_command(), *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_help_lists_every_verb_and_each_verb_has_help() -> None:
    from chuteflow.cli import VERBS

    names = [verb.NAME for verb in VERBS]
    assert len(set(names)) == len(names)
    top = _installed("--help")
    assert top.returncode == 0, top.stderr
    listed = top.stdout.split("{", 1)[1].split("}", 1)[0].split(",")
    assert listed == names
    for name in names:
        verb = _installed(name, "--help")
        assert verb.returncode == 0, f"chuteflow {name} --help: {verb.stderr}"
        assert verb.stdout.startswith(f"usage: chuteflow {name}"), verb.stdout


def test_bench_registers_every_benchmark() -> None:
    bench = _installed("bench", "--help")
    assert bench.returncode == 0, bench.stderr
    assert "{twin,decision,replay,shadow,train}" in bench.stdout


def test_importing_the_cli_loads_no_numpy() -> None:
    """``main`` sets the BLAS thread defaults first; that only works before numpy loads."""
    code = "import sys, chuteflow.cli; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_main_defaults_blas_to_one_thread_but_keeps_a_users_setting(tmp_path: Path) -> None:
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in names}
    env["OMP_NUM_THREADS"] = "3"
    code = (
        "import os, sys\n"
        "from chuteflow.cli import main\n"
        "assert main(['contracts', 'export', sys.argv[1]]) == 0\n"
        f"print(','.join(os.environ[n] for n in {names!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert out.stdout.strip().splitlines()[-1] == "1,3,1"


def test_a_worker_error_is_one_line_and_exit_code_2() -> None:
    """The installed command, end to end: a ChuteflowError prints one line, exit code 2."""
    result = _installed("worker", "--scenario", "nowhere")
    assert result.returncode == 2
    err = result.stderr.strip()
    assert err.startswith("chuteflow: ") and "\n" not in err, err
