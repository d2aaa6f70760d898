"""The chuteflow command: simulate on both scenarios, day files, clear errors, determinism, and
the installed console script (every verb, its --help, BLAS thread defaults)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
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
    from contracts.catalog import published_messages

    written = sorted(path.name for path in tmp_path.glob("*.schema.json"))
    assert written == sorted(f"{m.name}.v1.schema.json" for m in published_messages())
    assert (tmp_path / "asyncapi.yaml").is_file()


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
    listed = set(bench.stdout.split("{", 1)[1].split("}", 1)[0].split(","))
    assert {"twin", "decision", "replay", "shadow", "train"} <= listed


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


# --- the one CLI grammar (issue 21) -------------------------------------------------------


def test_version_names_the_installed_distribution() -> None:
    from importlib.metadata import version

    result = _installed("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"chuteflow {version('chuteflow')}"


def test_a_shipped_name_resolves_on_simulate(capsys: pytest.CaptureFixture[str]) -> None:
    """``drmarl`` is the scenario's shipped drmarl file; ``drmarl-small`` names it directly;
    both decide exactly as the file's path does."""
    day = ("--scenario", "small", "--group", "3", "--seed", "2")
    short = _simulate(capsys, *day, "--policy", "drmarl")
    full = _simulate(capsys, *day, "--policy", "drmarl-small")
    path = _simulate(capsys, *day, "--policy", "decision/policies/drmarl-small.onnx")
    static = _simulate(capsys, *day, "--policy", "static")
    assert short == full == path
    assert short != static


def test_a_store_name_without_a_broker_says_to_give_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    day = ["simulate", "--scenario", "small", "--group", "0"]
    assert main([*day, "--policy", "drmarl-small@champion"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "give --bootstrap" in err, err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["simulate", "--group", "0", "--seed", "-1"], "--seed"),
        (["simulate", "--scenario", "small", "--group", "-2"], "--group"),
        (["evaluate", "--seeds", "0"], "--seeds"),
        (["simulate", "--scenario", "small", "--group", "0", "--policy", "magic"], "magic"),
        (["shadow", "report", "--site", "site-nowhere"], "site-nowhere"),
        (["simulate", "--scenario", "nowhere", "--group", "0"], "nowhere"),
        (["simulate", "--group", "0", "--no-such-flag"], "--no-such-flag"),
    ],
)
def test_bad_values_are_one_line_and_exit_code_2(argv: list[str], needle: str) -> None:
    result = _installed(*argv)
    err = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, err)
    assert "\n" not in err and needle in err and "Traceback" not in err, err


def test_a_deprecated_flag_still_works_and_says_so(tmp_path: Path) -> None:
    """``replay --timeout`` is ``--timeout-seconds`` now: the old spelling parses into the new
    name and prints one line."""
    from chuteflow.cli import build_parser

    args = build_parser().parse_args(["replay", "--group", "0", "--timeout", "7"])
    assert args.timeout_seconds == 7.0
    result = _installed("replay", "--group", "0", "--timeout", "7", "--bootstrap", "127.0.0.1:1")
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "chuteflow: --timeout is deprecated; use --timeout-seconds"


def test_defaults_show_in_help_and_every_verb_defaults_to_one_scenario() -> None:
    from chuteflow.cli import build_parser
    from chuteflow.cli._shared import DEFAULT_SCENARIO

    parser = build_parser()
    for argv in (["simulate", "--group", "0"], ["replay", "--group", "0"], ["evaluate"]):
        assert parser.parse_args(argv).scenario == DEFAULT_SCENARIO
    assert parser.parse_args(["bench", "twin"]).scenario == DEFAULT_SCENARIO
    assert parser.parse_args(["train", "--out", "x"]).scenario == DEFAULT_SCENARIO
    text = _installed("simulate", "--help").stdout
    assert f"(default: {DEFAULT_SCENARIO})" in text and "(default: static)" in text


@pytest.mark.parametrize("bootstrap", ["127.0.0.1:{port}", "nonexistent.invalid:9092"])
def test_an_unreachable_broker_is_one_line_within_5_s(bootstrap: str) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        address = bootstrap.format(port=sock.getsockname()[1])
        started = time.monotonic()
        result = _installed("policy", "list", "--bootstrap", address)
        took = time.monotonic() - started
    err = result.stderr.strip()
    assert result.returncode == 2 and "\n" not in err and address in err, err
    assert took <= 5.0, f"{took:.1f} s"


def test_simulate_and_replay_format_numbers_one_way(capsys: pytest.CaptureFixture[str]) -> None:
    from chuteflow.cli._shared import format_number

    assert format_number("recirculation_rate", 0.0702583490863264) == "7.026%"
    assert format_number("inducted", 12345) == "12,345"
    assert format_number("throughput_per_hour", 1022.0) == "1,022.00"
    assert main(["simulate", "--scenario", "small", "--group", "1"]) == 0
    out = capsys.readouterr().out
    rate = next(line for line in out.splitlines() if "recirculation_rate" in line)
    assert re.fullmatch(r"\s*recirculation_rate\s+\d+\.\d{3}%", rate), rate


def test_progress_prints_plain_periodic_lines_with_an_eta_off_a_terminal() -> None:
    import io

    from chuteflow.progress import Progress

    stream = io.StringIO()
    progress = Progress(4, "job", stream=stream, interactive=False, period_s=0.0)
    for done in range(1, 4):
        time.sleep(0.01)
        progress.update(done)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("job: 1/4 (25%) elapsed") and "ETA" in lines[0]
    assert len(lines) == 4 and "3/4" in lines[-1]  # three periods, then the closing line
    assert "\r" not in stream.getvalue()


def test_progress_on_a_terminal_is_a_tqdm_bar_with_an_eta() -> None:
    import io

    from chuteflow.progress import Progress

    stream = io.StringIO()
    progress = Progress(10, "job", stream=stream, interactive=True)
    progress.update(5)
    progress.close()
    assert "job" in stream.getvalue() and "5/10" in stream.getvalue()
    assert "<" in stream.getvalue()  # tqdm's elapsed<remaining


@pytest.mark.kafka
def test_store_names_and_aliases_resolve_on_every_verb(
    kafka_topics: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``policy alias set`` names a version; ``NAME@ALIAS``, ``NAME@latest``, the shipped name
    and the hash all name the same bytes on ``policy show`` and ``simulate``."""
    monkeypatch.setenv("CHUTEFLOW_POLICY_CACHE", str(tmp_path / "cache"))
    kafka = ["--bootstrap", kafka_topics]
    shipped = "decision/policies/drmarl-exhaustive-small.onnx"
    name = "readme-exhaustive"
    assert main(["policy", "register", shipped, "--name", name, "--json", *kafka]) == 0
    version = json.loads(capsys.readouterr().out)["version"]
    assert main(["policy", "alias", "set", f"{name}@{version[:8]}", "champion", *kafka]) == 0
    capsys.readouterr()
    assert main(["policy", "alias", "list", "--json", *kafka]) == 0
    aliases = json.loads(capsys.readouterr().out)
    assert {"alias": f"{name}@champion", "version": version} in [
        {k: a[k] for k in ("alias", "version")} for a in aliases
    ]
    shown = []
    for ref in (f"{name}@champion", f"{name}@latest", name, "drmarl-exhaustive-small"):
        assert main(["policy", "show", ref, *kafka]) == 0, ref
        shown.append(json.loads(capsys.readouterr().out)["version"])
    assert shown == [version] * 4
    assert main(["policy", "show", f"{name}@nosuchalias", *kafka]) == 2
    assert "no alias 'nosuchalias'" in capsys.readouterr().err

    day = ["--scenario", "small", "--group", "2", "--seed", "1"]
    by_alias = _simulate(capsys, *day, "--policy", f"{name}@champion", *kafka)
    by_file = _simulate(capsys, *day, "--policy", "drmarl-exhaustive")
    assert by_alias == by_file


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "x"])
def test_a_budget_must_be_a_finite_number_above_zero(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--minutes -5`` said "not a number >= 0" (a zero is refused too) and ``nan`` and ``inf``
    passed every bound; each is now one line naming the rule."""
    argv = ["site", "onboard", "--site", "s.yaml", "--history", "h", "--out", "b"]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--minutes", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--minutes:" in err and value in err and "a number > 0" in err, err


@pytest.mark.parametrize(
    "argv",
    [
        ["ops", "serve", "--port", "99999"],
        ["kafka", "up", "--port", "-1"],
        ["kafka", "up", "--sasl-ssl-port", "x"],
        ["worker", "--metrics-port", "65536"],
    ],
)
def test_a_port_out_of_range_is_refused_before_anything_starts(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``ops serve --port 99999`` went on to connect to Kafka and failed there."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is not a port (0-65535)" in err, err
