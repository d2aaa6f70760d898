"""The same small onboarding in one process, on a local Ray and on a real two-node Ray
cluster on this machine gives byte-identical policies and identical report figures."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluation.fanout import SerialFanOut, open_fanout, ray_fanout
from evaluation.run import run_all, specs_for
from floor.threads import BLAS_VARIABLES, blas_core, blas_environment
from onboarding.pipeline import check_inputs, onboard
from onboarding.plan import OnboardOptions
from tests.onboarding.onboard_site import make_site

pytest.importorskip("ray")
pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))
COMPARED = ("policy", "candidates", "evaluation", "groups-tiny.npz")
OTHER_CORE = "Sandybridge" if "OPENBLAS_CORETYPE" in blas_environment() else None
"""Kernels the second node would pick by itself (AVX only: any CPU that runs the pinned
family runs these); they train other bytes (tests/test_threads.py)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``ray start ... --block`` in its own process group: stopping the group stops exactly
    this node's processes (never another Ray on the machine, as ``ray stop`` would)."""
    return subprocess.Popen(
        [RAY, "start", "--block", "--disable-usage-stats", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            os.killpg(process.pid, signal.SIGKILL)  # stragglers of the group (workers)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


@pytest.fixture()
def two_nodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A head and a second node, one CPU each; yields the address. Neither node is started
    with this process's BLAS settings, and the second picks other kernels by itself (as a
    node with another CPU would): the job must bring its own (``floor.threads``)."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARIABLES}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # One auth mode for the nodes and this driver: a local Ray started earlier (another test,
    # another job on the machine) leaves ~/.ray/auth_token, and a head that finds it wants a
    # token the second node does not send ("the second node never joined")
    env["RAY_AUTH_MODE"] = "disabled"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    other = {**env, "OPENBLAS_CORETYPE": OTHER_CORE} if OTHER_CORE else env
    common = ["--num-cpus", "1", "--dashboard-agent-listen-port", "0"]
    head = _start(
        ["--head", "--port", str(port), "--temp-dir", temp, "--include-dashboard=false", *common],
        env,
    )
    nodes = [head]
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert head.poll() is None, "ray head exited"
            time.sleep(0.5)
        nodes.append(_start(["--address", address, *common], other))
        yield address
    finally:
        for node in reversed(nodes):
            _stop(node)
        shutil.rmtree(temp, ignore_errors=True)


def _files(bundle: Path) -> dict[str, bytes]:
    found = {}
    for name in COMPARED:
        root = bundle / name
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            if path.name in ("training_curve.json", "training_curve.png"):
                continue  # wall times and a plot of them
            if name == "candidates" and path.name == "settings.json":
                continue  # a training run's settings name the folder it was trained in
            found[str(path.relative_to(bundle))] = path.read_bytes()
    return found


def _figures(bundle: Path) -> str:
    report = (bundle / "report.md").read_text()
    return report[report.index("## Held-out evaluation") : report.index("## Stage times")]


def test_evaluation_rows_do_not_depend_on_the_fanout() -> None:
    specs = specs_for("small", ["static", "proportional"], [0, 1], 1, "small")
    serial = run_all(specs, fanout=SerialFanOut())
    with open_fanout("local", 2) as fanout:
        assert fanout.name.startswith("ray (local")
        assert run_all(specs, fanout=fanout) == serial
        assert fanout.map(_core_after, [0.0, 0.0]) == [blas_core()] * 2


def _core_after(seconds: float) -> str | None:
    """The BLAS kernels of the worker that ran this (after a pause, so both nodes get one)."""
    time.sleep(seconds)
    return blas_core()


def _slow_square(x: int) -> int:
    time.sleep(0.6)
    return x * x


def test_a_map_reports_its_start_and_a_heartbeat_while_no_task_finishes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A progress line's clock starts with the job, and minute-long tasks (training members)
    still reach its period: the onboarding log once said "4/4 elapsed 8m56s" for 17.9 min."""
    import evaluation.fanout

    monkeypatch.setattr(evaluation.fanout, "HEARTBEAT_S", 0.1)
    serial: list[tuple[int, int]] = []
    assert SerialFanOut().map(_slow_square, [1, 2], lambda d, n: serial.append((d, n))) == [1, 4]
    assert serial == [(0, 2), (1, 2), (2, 2)]
    calls: list[tuple[int, int]] = []
    with open_fanout("local", 2) as fanout:
        assert fanout.map(_slow_square, [1, 2, 3], lambda d, n: calls.append((d, n))) == [1, 4, 9]
    assert calls[0] == (0, 3) and calls[-1] == (3, 3)
    assert calls.count((0, 3)) >= 3  # heartbeats before the first task (0.6 s) finished
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_onboarding_is_byte_identical_locally_and_on_two_nodes(
    tmp_path: Path, two_nodes: str
) -> None:
    site, history = make_site(tmp_path / "site")
    options = OnboardOptions.quick_run()
    bundles = {}
    for where, address in (("local", None), ("cluster", two_nodes)):
        out = tmp_path / where
        inputs = check_inputs(site, history, out, options)
        with ray_fanout(address, 2 if address is None else None) as fanout:
            if address is not None:
                import ray

                deadline = time.monotonic() + 60  # the second node may still be joining
                while len([n for n in ray.nodes() if n["Alive"]]) < 2:
                    assert time.monotonic() < deadline, "the second node never joined"
                    time.sleep(0.5)
                assert ray.cluster_resources()["CPU"] == 2, "two nodes of one CPU each"
                cores = fanout.map(_core_after, [1.0] * 4)
                assert set(cores) == {blas_core()}, cores  # on both nodes
            result = onboard(inputs, out, options, fanout, log=lambda _: None)
        assert result.manifest["fanout"] == fanout.name
        assert result.manifest["versions"].get("openblas_core") == blas_core()
        bundles[where] = out
    local, cluster = (_files(bundles[w]) for w in ("local", "cluster"))
    assert any(name.endswith(".onnx") for name in local)
    assert local.keys() == cluster.keys()
    assert [n for n in local if local[n] != cluster[n]] == []
    assert _figures(bundles["local"]) == _figures(bundles["cluster"])


def test_an_address_where_no_cluster_runs_is_one_line_in_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--ray`` at an address where nothing listens used to wait minutes in ``ray.init``,
    printing Ray's own warnings; now it is one line and exit 2, before anything is written."""
    from chuteflow.cli import main
    from evaluation.fanout import FanOutError

    address = f"127.0.0.1:{_free_port()}"  # bound once, then closed: nothing listens there
    began = time.monotonic()
    with (
        pytest.raises(FanOutError, match=f"no Ray cluster answers at {address}"),
        ray_fanout(address),
    ):
        pass
    assert time.monotonic() - began < 30  # Ray alone: minutes
    site, history = make_site(tmp_path / "site")
    argv = ["site", "onboard", "--site", str(site), "--history", str(history), "--quick"]
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "b"), "--ray", f"ray://{address}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no Ray cluster answers at ray://" in err[0], err
    assert not (tmp_path / "b.partial").exists() and not (tmp_path / "b").exists()


def test_an_address_where_something_else_listens_is_one_line_in_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--ray`` at the wrong port (a web server, a Kafka broker: it accepts TCP, so the
    TCP probe passes) waited more than 6.7 minutes in ``ray.init``; now Ray's own first call,
    with short timeouts, makes it one line and exit 2."""
    import http.server
    import threading

    from chuteflow.cli import main
    from evaluation.fanout import FanOutError

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # the command's stderr is checked
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}"
    try:
        began = time.monotonic()
        with (
            pytest.raises(FanOutError, match="does not answer as Ray's GCS"),
            ray_fanout(address),
        ):
            pass
        assert time.monotonic() - began < 40
        site, history = make_site(tmp_path / "site")
        argv = ["site", "onboard", "--site", str(site), "--history", str(history), "--quick"]
        capsys.readouterr()
        assert main([*argv, "--out", str(tmp_path / "b"), "--ray", address]) == 2
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"no Ray cluster answers at {address}" in err[0], err
    assert not (tmp_path / "b.partial").exists() and not (tmp_path / "b").exists()
