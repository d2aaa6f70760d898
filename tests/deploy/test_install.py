"""The installed package, used the way the image uses it (run by ``scripts/check-install``).

``scripts/check-install`` builds the wheel exactly as the Dockerfile does (``pip wheel
--no-deps`` of the build context that ``.dockerignore`` leaves), installs it into a fresh venv
outside the repository, and runs this module with ``CHUTEFLOW_INSTALLED_VENV`` set to that
venv. Every command here runs that venv's ``chuteflow`` (or its python) from a directory outside
the source tree, with no ``PYTHONPATH``, so the repository can never stand in for a file the
wheel left out: a module missing from the wheel is an ``ImportError`` here, or a name in the
comparison against the repository's ``.py`` files.

``--help`` imports almost nothing (the verb modules import their packages when they run), so
each verb's real code path is run instead, with its smallest arguments: the offline verbs on
the small site, and the Kafka verbs against a broker started with the installed ``chuteflow
kafka up`` and a worker started from the installed venv. Without the variable the module is
skipped: it tests an install, not the checkout.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = os.environ.get("CHUTEFLOW_INSTALLED_VENV", "")

pytestmark = pytest.mark.skipif(
    not VENV, reason="tests an installed wheel: run scripts/check-install"
)


def shipped_packages() -> list[str]:
    """The top-level packages pyproject ships (``[tool.setuptools.packages.find] include``)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({pattern.rstrip("*").rstrip(".") for pattern in include})


def repo_modules(packages: list[str]) -> set[str]:
    """Every module the repository has under ``packages``: each ``.py`` file by dotted name
    (``__init__`` names its package). The files are those check-install built the wheel from
    (``CHUTEFLOW_INSTALL_FILES``: git's list at that moment, before .dockerignore), else the
    checkout's."""
    listed = os.environ.get("CHUTEFLOW_INSTALL_FILES")
    if listed:
        paths = [Path(p) for p in Path(listed).read_text().split("\0") if p]
    else:
        paths = [p.relative_to(REPO) for package in packages for p in (REPO / package).rglob("*")]
    names = set()
    for path in paths:
        if path.suffix != ".py" or path.parts[0] not in packages or "__pycache__" in path.parts:
            continue
        parts = list(path.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.add(".".join(parts))
    return names


def running(pid: int) -> bool:
    """True while ``pid`` runs; an exited process nobody has reaped yet (state Z) is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass(frozen=True)
class Installed:
    """The installed venv and a work directory outside the repository to run it in."""

    venv: Path
    workdir: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def env(self) -> dict[str, str]:
        """The caller's environment without anything that points back at the checkout or at
        another Kafka: no ``PYTHONPATH``, no ``KAFKA_*``; the venv first on ``PATH``; the
        policy cache in the work directory."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("KAFKA_")
        }
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["CHUTEFLOW_POLICY_CACHE"] = str(self.workdir / "policy-cache")
        env["MPLBACKEND"] = "Agg"
        return env

    def run(self, *args: str, expect: int = 0, timeout: float = 180.0) -> str:
        """``chuteflow ARGS`` from the work directory; its stdout, or a failure that shows
        the command and the tail of what it printed."""
        return self.run_program([str(self.venv / "bin" / "chuteflow"), *args], expect, timeout)

    def run_program(self, command: list[str], expect: int = 0, timeout: float = 180.0) -> str:
        started = time.monotonic()
        done = subprocess.run(
            command,
            cwd=self.workdir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        shown = " ".join(Path(command[0]).name if i == 0 else c for i, c in enumerate(command))
        assert done.returncode == expect, (
            f"`{shown}` exited {done.returncode} (expected {expect}) after "
            f"{time.monotonic() - started:.1f} s\nstdout:\n{done.stdout[-3000:]}\n"
            f"stderr:\n{done.stderr[-3000:]}"
        )
        return done.stdout

    def package_dir(self, package: str) -> Path:
        out = self.run_program(
            [str(self.python), "-c", f"import {package}; print({package}.__file__)"]
        )
        return Path(out.strip()).parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    venv = Path(VENV).resolve()
    assert (venv / "bin" / "chuteflow").is_file(), f"{venv} has no bin/chuteflow"
    assert not venv.is_relative_to(REPO), f"the venv {venv} lies inside the repository"
    workdir = tmp_path_factory.mktemp("installed-run")
    assert not workdir.is_relative_to(REPO)
    return Installed(venv, workdir)


# --- every module, every data file ------------------------------------------------------

IMPORT_ALL = """
import importlib, json, pkgutil, sys
found, failed, files = [], {}, {}
for top in sys.argv[1:]:
    try:
        package = importlib.import_module(top)
    except BaseException as error:
        failed[top] = f"{type(error).__name__}: {error}"
        continue
    found.append(top)
    files[top] = package.__file__
    def onerror(name):
        failed[name] = repr(sys.exc_info()[1])
    for info in pkgutil.walk_packages(package.__path__, top + ".", onerror=onerror):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            found.append(info.name)  # a program, not a module: run below, never imported
            continue
        try:
            importlib.import_module(info.name)
        except BaseException as error:
            failed[info.name] = f"{type(error).__name__}: {error}"
        else:
            found.append(info.name)
print(json.dumps({"found": found, "failed": failed, "files": files}))
"""


def test_every_module_of_every_shipped_package_imports(installed: Installed) -> None:
    packages = shipped_packages()
    assert "rollout" in packages and "chuteflow" in packages
    out = installed.run_program([str(installed.python), "-c", IMPORT_ALL, *packages])
    result = json.loads(out)
    assert result["failed"] == {}, f"modules that do not import: {result['failed']}"
    for package, file in result["files"].items():
        assert Path(file).is_relative_to(installed.venv), f"{package} imported from {file}"
    missing = sorted(repo_modules(packages) - set(result["found"]))
    assert missing == [], f"modules in the repository but not in the wheel: {missing}"
    assert len(result["found"]) > 50


def test_every_package_data_file_is_installed(installed: Installed) -> None:
    """Scenarios, guardrails, day-type groups, shipped policies, the broker's pom: every file
    that pyproject's package-data globs match in the repository is in the install."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    missing = []
    checked = 0
    for package, patterns in pyproject["tool"]["setuptools"]["package-data"].items():
        where = installed.package_dir(package)
        for pattern in patterns:
            for path in (REPO / package).glob(pattern):
                if not path.is_file() or not path.resolve().is_relative_to(REPO):
                    continue
                relative = path.relative_to(REPO / package)
                checked += 1
                if not (where / relative).is_file():
                    missing.append(f"{package}/{relative}")
    assert missing == []
    assert checked >= 10


def test_python_dash_m_runs_the_cli(installed: Installed) -> None:
    out = installed.run_program([str(installed.python), "-m", "chuteflow.cli", "--help"])
    assert "simulate" in out and "worker" in out


def test_version(installed: Installed) -> None:
    """``chuteflow --version`` names the installed distribution's version."""
    version = installed.run_program(
        [
            str(installed.python),
            "-c",
            "import importlib.metadata as m; print(m.version('chuteflow'))",
        ]
    ).strip()
    assert installed.run("--version").strip() == f"chuteflow {version}"


# --- the offline verbs ------------------------------------------------------------------


def test_simulate_evaluate_and_the_benches(installed: Installed) -> None:
    kpis = json.loads(installed.run("simulate", "--scenario", "small", "--group", "0", "--json"))
    assert kpis["inducted"] > 0 and 0 <= kpis["recirculation_rate"] < 1

    out = installed.workdir / "evaluate"
    installed.run(
        "evaluate", "--scenario", "small", "--policies", "static", "--groups", "0",
        "--seeds", "1", "--workers", "1", "--out", str(out),
    )  # fmt: skip
    assert any(out.rglob("*.md")), f"evaluate wrote no report to {out}"

    decision = json.loads(
        installed.run("bench", "decision", "--scenario", "small", "--days", "1", "--json")
    )
    assert decision, "bench decision printed nothing"
    twin = json.loads(
        installed.run("bench", "twin", "--scenario", "small", "--days", "1", "--json")
    )
    assert twin
    train = json.loads(
        installed.run("bench", "train", "--scenario", "small", "--episodes", "1", "--json")
    )
    assert train["episodes"] == 1


def test_days_train_demo_and_contracts(installed: Installed) -> None:
    days = installed.workdir / "days"
    installed.run(
        "days", "generate", "--scenario", "small", "--start", "2025-01-06", "--days", "2",
        "--out", str(days),
    )  # fmt: skip
    assert len(list(days.glob("*.csv"))) == 2
    groups = installed.workdir / "groups.npz"
    installed.run(
        "days", "fit-groups", "--scenario", "small", "--days", str(days), "--groups", "1",
        "--out", str(groups),
    )  # fmt: skip
    assert groups.is_file()
    day_file = sorted(days.glob("*.csv"))[0]
    kpis = json.loads(
        installed.run("simulate", "--scenario", "small", "--day", str(day_file), "--json")
    )
    assert kpis["inducted"] > 0

    trained = installed.workdir / "train"
    installed.run("train", "--quick", "--scenario", "small", "--out", str(trained))
    onnx = trained / "drmarl-small.onnx"
    assert onnx.is_file()
    kpis = json.loads(
        installed.run(
            "simulate", "--scenario", "small", "--group", "0", "--policy", str(onnx), "--json"
        )
    )
    assert kpis["inducted"] > 0

    demo = installed.workdir / "demo"
    installed.run("demo", "--offline", "--out", str(demo))
    assert any(demo.glob("*.png")), f"demo --offline wrote no plot to {demo}"

    schemas = installed.workdir / "schemas"
    installed.run("contracts", "export", str(schemas))
    assert len(list(schemas.glob("*.json"))) >= 7
    asyncapi = installed.workdir / "asyncapi.yaml"
    installed.run("contracts", "asyncapi", "--out", str(asyncapi))
    assert "asyncapi: 3." in asyncapi.read_text()


# --- the Kafka verbs, against a broker and a worker of the install ----------------------


@pytest.fixture(scope="module")
def broker(installed: Installed) -> Iterator[str]:
    """``chuteflow kafka up`` of the install on a free port with its own state directory;
    stopped with ``kafka down`` (SIGTERM, then SIGKILL by PID) and checked gone."""
    state = installed.workdir / "kafka-state"
    not_running = json.loads(installed.run("kafka", "status", "--state-dir", str(state), expect=1))
    assert not_running["running"] is False
    assert str(not_running["version"]).startswith("4.")  # read from the packaged pom.xml
    bootstrap = installed.run(
        "kafka", "up", "--port", "0", "--state-dir", str(state), "--timeout", "90", timeout=300
    ).split()[0]
    pid = int((state / "kafka.pid").read_text())
    try:
        status = json.loads(installed.run("kafka", "status", "--state-dir", str(state)))
        assert status["running"] is True
        yield bootstrap
    finally:
        installed.run("kafka", "down", "--state-dir", str(state))
        if running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # never leave a JVM behind
            pytest.fail(f"kafka down left the broker (pid {pid}) running")


@pytest.fixture(scope="module")
def worker(installed: Installed, broker: str) -> Iterator[str]:
    """``chuteflow worker`` of the install, serving the small site (proportional until a route
    says otherwise), from a fresh consumer group at the earliest offsets; stopped by PID."""
    from localkafka import free_port

    installed.run("kafka", "topics", "--bootstrap", broker)
    ready = installed.workdir / "worker.ready"
    port = free_port()
    log = (installed.workdir / "worker.log").open("wb")
    command = [
        str(installed.venv / "bin" / "chuteflow"), "worker", "--scenario", "small",
        "--bootstrap", broker, "--app-id", "install-test", "--ready-file", str(ready),
        "--metrics-port", str(port),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=installed.workdir, env=installed.env(), stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            log_tail = (installed.workdir / "worker.log").read_text(errors="replace")[-3000:]
            assert process.poll() is None, f"the worker exited:\n{log_tail}"
            assert time.monotonic() < deadline, f"the worker never became ready:\n{log_tail}"
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            assert b"chuteflow_" in page.read()
        yield broker
    finally:
        from replay.workers import stop_worker

        stop_worker(process)


def test_policy_route_replay_history_shadow_rollback(installed: Installed, worker: str) -> None:
    """The live operations of the install: register the shipped DRMARL, route it (the worker
    answers), replay a small day through the worker (its KPIs are ``simulate``'s under the
    same policy), read the history and the shadow report, then shadow, canary, gate, promote,
    abort and the emergency rollback, each answered by the worker."""
    kafka = ("--bootstrap", worker)
    shipped = installed.package_dir("decision") / "policies" / "drmarl-small.onnx"
    registered = json.loads(
        installed.run(
            "policy", "register", str(shipped), "--name", "drmarl-small", "--json", *kafka
        )
    )
    ref = f"drmarl-small@{registered['short_version']}"
    listed = json.loads(installed.run("policy", "list", "--json", *kafka))
    assert [p["name"] for p in listed] == ["drmarl-small"]
    shown = json.loads(installed.run("policy", "show", ref, *kafka))
    assert shown["version"] == registered["version"]
    alias = json.loads(installed.run("policy", "alias", "set", ref, "stable", "--json", *kafka))
    assert alias["version"] == registered["version"]
    aliases = json.loads(installed.run("policy", "alias", "list", "--json", *kafka))
    assert [a["alias"] for a in aliases] == ["drmarl-small@stable"]

    def route(*args: str) -> dict[str, object]:
        """One site's new route (``--json``: a list, one per site), applied by the worker."""
        [answer] = json.loads(
            installed.run("policy", *args, "--site", "site-small", "--json", *kafka)
        )
        assert str(answer["worker_answer"]).startswith("applied by"), answer
        return dict(answer)

    # The worker may have published its --policy as the site's first route (worker-default).
    first = int(str(route("route", "--serve", "drmarl-small@stable")["revision"]))
    [line] = [
        r for r in installed.run("policy", "routes", *kafka).splitlines() if "site-small" in r
    ]
    assert f"revision {first} (route) drmarl-small@" in line, line

    day = ("--scenario", "small", "--group", "0", "--seed", "0")
    replayed = json.loads(
        installed.run("replay", *day, "--speed", "max", "--timeout", "60", "--json", *kafka)
    )
    simulated = json.loads(installed.run("simulate", *day, "--policy", str(shipped), "--json"))
    assert replayed == simulated

    history = json.loads(
        installed.run("policy", "history", "--site", "site-small", "--json", *kafka)
    )
    served = {(row["policy"], row["route_revision"]) for row in history["intervals"]}
    assert served == {("drmarl-small", first)}, served

    plots = installed.workdir / "shadow"
    report = json.loads(
        installed.run(
            "shadow",
            "report",
            "--site",
            "site-small",
            "--scenario",
            "small",
            "--plot",
            str(plots),
            "--json",
            *kafka,
        )
    )
    assert report["complete"] is True and Path(report["plot"]).is_file()

    assert route("shadow", "proportional")["revision"] == first + 1
    assert route("route", "--serve", "proportional")["revision"] == first + 2
    installed.run("policy", "canary", ref, "--sites", "site-small", "--no-watch", *kafka)
    # No interval is decided meanwhile, so the gate is still open: exit code 3 says so.
    installed.run("policy", "gate", "--timeout-seconds", "1", *kafka, expect=3, timeout=60)
    assert route("promote")["revision"] == first + 4
    assert route("route", "--serve", "proportional")["revision"] == first + 5
    installed.run("policy", "canary", ref, "--sites", "site-small", "--no-watch", *kafka)
    assert route("abort")["revision"] == first + 7
    rolled_back = route("rollback")  # the emergency command: the previous policy serves again
    assert rolled_back["revision"] == first + 8
    assert rolled_back["serving"] == {"name": "drmarl-small", "sha256": registered["version"]}
    installed.run("policy", "alias", "remove", "drmarl-small@stable", *kafka)
    assert json.loads(installed.run("policy", "alias", "list", "--json", *kafka)) == []


def test_bench_replay_starts_the_installed_worker(installed: Installed, broker: str) -> None:
    """``bench replay`` starts its own worker with the ``chuteflow`` next to its python: the
    installed one."""
    result = json.loads(
        installed.run(
            "bench",
            "replay",
            "--scenario",
            "small",
            "--intervals",
            "2",
            "--bootstrap",
            broker,
            "--json",
            timeout=240,
        )
    )
    assert result["intervals"] == 2
    assert result["events"] > 0
    assert result["raw_wall_s"] > 0 and result["ratio"] > 0
    # the worker process's own CPU (procfs), beside the driver's: where a replay's time goes
    assert 0 < result["worker_cpu_s"] < result["wall_s"] * 2
    assert result["worker_cpu_us_per_record"] > 0
    # the same records through the worker's own faust transport, decode only (the floor the
    # worker's transport sets before it does any work of its own)
    assert result["transport_wall_s"] > 0 and result["transport_consumer_cpu_s"] > 0
    floors = result["transport_wall_s"] / result["raw_wall_s"]  # of rounded walls
    assert result["transport_ratio"] == pytest.approx(floors, rel=0.05, abs=0.01)
    # the bounds from CPU: the worker's and its transport's CPU over the raw floor's wall
    raw = result["raw_wall_s"]
    worker, transport = result["worker_cpu_s"], result["transport_consumer_cpu_s"]
    assert result["worker_cpu_ratio"] == pytest.approx(worker / raw, rel=0.05, abs=0.02)
    assert result["transport_cpu_ratio"] == pytest.approx(transport / raw, rel=0.05, abs=0.02)


def test_bench_fleet_replays_two_sites_on_the_installed_worker(
    installed: Installed, broker: str
) -> None:
    """``bench fleet``, tiny: two sites (small, medium) on one installed worker, as fast as it
    goes; every site equals its in-process day and the topic has every site-interval once."""
    result = json.loads(
        installed.run(
            "bench", "fleet", "--sites", "2", "--workers", "1", "--pace", "max",
            "--hours", "0.5", "--no-warmup", "--bootstrap", broker, "--json",
            timeout=300,
        )
    )  # fmt: skip
    assert result["kpis_equal"] and result["allocations_equal"]
    assert result["audit"]["missing"] == [] and result["audit"]["decided_twice_differently"] == []
    assert result["warmup_sites"] == 0  # --no-warmup (the warm-up: tests/replay/test_fleet.py)


def test_ops_serve_shows_the_sites(installed: Installed, worker: str) -> None:
    """``chuteflow ops serve`` of the install: the page and its state answer; stopped by PID."""
    from localkafka import free_port

    port = free_port()
    log = (installed.workdir / "ops.log").open("wb")
    command = [str(installed.venv / "bin" / "chuteflow"), "ops", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--bootstrap", worker],
        cwd=installed.workdir,
        env=installed.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        deadline = time.monotonic() + 60
        while True:
            tail = (installed.workdir / "ops.log").read_text(errors="replace")[-3000:]
            assert process.poll() is None, f"ops serve exited:\n{tail}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    assert b"chuteflow" in page.read()
                break
            except OSError:
                assert time.monotonic() < deadline, f"ops serve never answered:\n{tail}"
                time.sleep(0.5)
        sites: set[str] = set()
        while "site-small" not in sites:  # the page reads the topics in the background
            assert time.monotonic() < deadline + 30, f"no site-small on the ops page: {sites}"
            time.sleep(0.5)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=30) as got:
                sites = {site["site_id"] for site in json.loads(got.read())["sites"]}
    finally:
        from replay.workers import stop_worker

        stop_worker(process)


def test_site_catalog_add_list_remove(installed: Installed, worker: str) -> None:
    """``site add|list|remove`` of the install against its broker: the small site under another
    id (checked strictly, then published), listed with its partition, removed; removing it again
    is one line and exit 2. (Serving catalog sites: tests/stream/test_site_catalog.py.)"""
    kafka = ("--bootstrap", worker)
    site_id = "install-catalog-small"
    added = json.loads(
        installed.run("site", "add", "--site", "small", "--site-id", site_id, "--json", *kafka)
    )
    assert added["site_id"] == site_id and added["revision"] == 1, added
    # the install's broker is shared: `bench fleet` publishes its sites to the same catalog
    listed = json.loads(installed.run("site", "list", "--json", *kafka))
    ours = [row for row in listed if row["site_id"] == site_id]
    assert [(row["site_id"], row["name"]) for row in ours] == [(site_id, "small")]
    assert ours[0]["partition"] == added["partition"]
    installed.run("site", "remove", site_id, *kafka)
    after = json.loads(installed.run("site", "list", "--json", *kafka))
    assert site_id not in {row["site_id"] for row in after}
    assert len(after) == len(listed) - 1  # the others are untouched
    installed.run("site", "remove", site_id, *kafka, expect=2)


def test_site_synth_check_and_onboard_without_the_onboard_extra(installed: Installed) -> None:
    """A plain install (no Ray, no pyarrow) makes a site and onboards it serially
    (``--workers 1``), writing a complete bundle; ``site check``, whose column scan needs
    pyarrow, says which extra to install instead of failing obscurely."""
    site = installed.workdir / "synth"
    installed.run(
        "site", "synth", "--out", str(site), "--destinations", "6", "--chutes", "5",
        "--shift-hours", "3", "--interval-minutes", "30", "--daily-volume", "1500",
        "--years", "1", "--seed", "3",
    )  # fmt: skip
    site_file, history = site / "site.yaml", site / "history"
    check = installed.run_program(
        [str(installed.venv / "bin" / "python"), "-c", "import pyarrow"], expect=1
    )
    assert check == ""
    report = installed.run(
        "site", "check", "--site", str(site_file), "--history", str(history), "--json", expect=2
    )
    assert "pip install 'chuteflow[onboard]'" in json.loads(report)["problems"][0]
    bundle = installed.workdir / "bundle"
    installed.run(
        "site", "onboard", "--site", str(site_file), "--history", str(history),
        "--out", str(bundle), "--quick", "--workers", "1",
    )  # fmt: skip
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest and (bundle / "report.md").is_file()
    assert not (installed.workdir / "bundle.partial").exists()
    timing = json.loads(installed.run("bench", "onboard", "--bundle", str(bundle), "--json"))
    assert [t["site"] for t in timing["bundles"]] == [manifest["site"]]


RUN_HERE = {
    "simulate", "evaluate", "bench decision", "bench twin", "bench train", "days generate",
    "days fit-groups", "train", "demo", "contracts export", "contracts asyncapi", "kafka up",
    "kafka status", "kafka topics", "kafka down", "worker", "policy register", "policy list",
    "policy show", "policy alias set", "policy alias list", "policy alias remove",
    "policy route", "policy routes", "replay", "policy history", "shadow report",
    "policy shadow", "policy canary", "policy gate", "policy promote", "policy abort",
    "policy rollback", "bench replay", "ops serve", "site synth", "site check", "site onboard",
    "bench onboard", "site add", "site list", "site remove", "bench fleet",
}  # fmt: skip
"""Every command the tests above run from the install (``demo`` as ``--offline``)."""

NOT_RUN_HERE = {
    "bench shadow": "six large days, five simulated seeds each (about 90 s): its modules "
    "import above, tests/rollout runs its code",
    "bench canary": "replays two canary scenarios with workers (about 140 s on the small "
    "site): its modules import above, tests/rollout runs its code",
}
"""Commands too slow for the install check, and why."""

LEAF_COMMANDS = """
import argparse, json
from chuteflow.cli import build_parser
def walk(parser, prefix):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
                yield from walk(sub, [*prefix, name]) if nested else [" ".join([*prefix, name])]
print(json.dumps(sorted(walk(build_parser(), []))))
"""


def test_every_command_of_the_cli_is_run_here_or_says_why_not(installed: Installed) -> None:
    """A new verb or subcommand fails this until it is run above (or listed with a reason)."""
    leaves = set(json.loads(installed.run_program([str(installed.python), "-c", LEAF_COMMANDS])))
    assert leaves - RUN_HERE - set(NOT_RUN_HERE) == set()
    assert (RUN_HERE | set(NOT_RUN_HERE)) - leaves == set()
