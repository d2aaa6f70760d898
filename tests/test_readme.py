"""The README runs as written: every ```bash block in a fresh shell, every other ``chuteflow``
command it shows parsed by the current CLI.

A fresh shell means what a user has after the README's two setup commands: a minimal
environment (no activated venv, no ``KAFKA_*`` of the test session), the setup block run
first, so ``chuteflow`` and ``python`` are the ones its ``export PATH=...`` line puts first.
Blocks run from the repository root, as the README says to, and write only under ``out/``.

The one substitution: the block that starts a local broker (``chuteflow kafka up``; a second
JVM on the same port as a developer's) is replaced by the test session's broker
(``kafka_bootstrap``), handed to the later blocks as ``KAFKA_BOOTSTRAP_SERVERS`` as that
block would. Background jobs a block starts (``chuteflow worker ... &``) are killed when the
block ends, whether it passed or not.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS_WITH_COMMANDS = (REPO / "docs" / "operations.md",)
"""Pages the README points to for detail: their inline commands must parse too."""
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`(chuteflow [^`]+)`")
BROKER_BLOCK = "chuteflow kafka up"
BLOCK_TIMEOUT_S = 240.0
PLACEHOLDER = re.compile(r"\[|\||\(|\.\.\.|(?<![\w.-])[A-Z][A-Z_.]*(?![\w-])")
"""Marks a command shape in a table (``[--seed S]``, ``a|b``, ``FILE``) rather than a
command one can type."""


def bash_blocks() -> list[str]:
    return [match.group(1) for match in BLOCK.finditer(README.read_text())]


def inline_commands() -> list[str]:
    """``chuteflow ...`` in inline code outside the bash blocks, whitespace-normalized (an
    inline command may wrap across lines); command shapes with placeholders are left out."""
    text = "\n".join(BLOCK.sub("", p.read_text()) for p in (README, *DOCS_WITH_COMMANDS))
    found = [" ".join(match.group(1).split()) for match in INLINE.finditer(text)]
    return [command for command in found if not PLACEHOLDER.search(command[len("chuteflow") :])]


def fresh_env(extra: dict[str, str]) -> dict[str, str]:
    """A login-like environment: system PATH, HOME, a locale; nothing of this session."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "CHUTEFLOW_PROGRESS_SECONDS": "10",
    }
    for name in ("JAVA_HOME", "TMPDIR"):  # where the machine keeps them, not session state
        if name in os.environ:
            env[name] = os.environ[name]
    return env | extra


def run_block(setup: str, block: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``setup`` then ``block`` in one ``bash -e -o pipefail``; background jobs killed at exit."""
    script = "\n".join(
        [
            "set -e -o pipefail",
            "trap 'jobs -p | xargs -r kill 2>/dev/null; wait 2>/dev/null || true' EXIT",
            setup,
            block,
        ]
    )
    process = subprocess.Popen(
        ["bash", "-c", script],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the shell and what it started, by group
        out, _ = process.communicate()
        out += f"\n[timed out after {BLOCK_TIMEOUT_S:g} s]"
    return subprocess.CompletedProcess(process.args, process.returncode, out, None)


def test_the_readme_has_the_blocks_this_test_expects() -> None:
    blocks = bash_blocks()
    assert blocks[0].split() == ["scripts/bootstrap", "export", 'PATH="$PWD/.venv/bin:$PATH"']
    assert sum(block.lstrip().startswith(BROKER_BLOCK) for block in blocks) == 1
    assert len(inline_commands()) >= 10


@pytest.mark.kafka
@pytest.mark.slow
def test_every_bash_block_runs_in_a_fresh_shell(kafka_bootstrap: str, tmp_path: Path) -> None:
    setup, *blocks = bash_blocks()
    env = fresh_env({"CHUTEFLOW_POLICY_CACHE": str(tmp_path / "policy-cache")})
    started = time.monotonic()
    first = run_block(setup, "chuteflow --version", env)
    assert first.returncode == 0, first.stdout
    only_path = "\n".join(line for line in setup.splitlines() if line.startswith("export "))
    for block in blocks:
        if block.lstrip().startswith(BROKER_BLOCK):
            env["KAFKA_BOOTSTRAP_SERVERS"] = kafka_bootstrap
            continue
        result = run_block(only_path, block, env)
        assert result.returncode == 0, (
            f"README block failed:\n{block}\n--- output ---\n{result.stdout[-4000:]}"
        )
    took = time.monotonic() - started
    print(f"README blocks ran in {took:.0f} s")


@pytest.mark.parametrize("command", inline_commands())
def test_every_other_readme_command_parses(command: str) -> None:
    """A full command parses; a mention of a verb (``chuteflow policy register`` in prose)
    names one that exists (its ``--help`` answers)."""
    from chuteflow.cli import build_parser

    argv = shlex.split(command)[1:]
    if all(re.fullmatch(r"[a-z][a-z-]*", token) for token in argv):
        argv = [*argv, "--help"]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:
        if stop.code != 0:
            pytest.fail(f"README command does not parse ({stop.code}): {command}")
        return
    from floor.scenario import load_scenario
    from rollout.refs import resolve_policy

    given = getattr(args, "scenario", None)  # None: `worker --catalog` serves no fixed site
    if isinstance(given, list):
        given = given[0] if given else None
    scenario = load_scenario(given).name if given else None
    for name in str(getattr(args, "policies", "") or "").split(","):
        if name:
            resolve_policy(name, scenario)  # the names mean policies (RefError otherwise)
