"""One way to fan work out: submit independent tasks, get their results in submission order.

Evaluation day-runs, training members and candidate scoring are all independent, seeded
function calls. They run through a :class:`FanOut`:

- :class:`SerialFanOut`: in this process, one after another (tests, one-worker runs, a plain
  install without Ray);
- :class:`RayFanOut`: as Ray tasks, on a local Ray this process starts (``address=None``) or
  on an existing cluster (``address="HOST:PORT"``, what a network of sites needs).

Results do not depend on where a task ran: every task carries its own seeds (nothing reads a
global RNG), and every Ray worker runs BLAS single-threaded (``floor/threads.py``'s variables,
passed in the job's runtime environment so they hold on a cluster's nodes too), so the same
tasks give the same bytes on one process, a local Ray or two nodes.

Ray is an optional dependency (the ``onboard`` extra): it is imported here, lazily, and only
when a Ray fan-out is opened, so the worker's plain install never needs it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from floor.errors import ChuteflowError
from floor.threads import process_blas_environment

Task = TypeVar("Task")
Result = TypeVar("Result")
OnDone = Callable[[int, int], None]
"""Called with (tasks finished, tasks in all): (0, n) when the map starts, then as results
arrive, and every ``HEARTBEAT_S`` on Ray while none does."""
HEARTBEAT_S = 5.0
"""A progress line prints on its own period; this only lets a job of minute-long tasks (a
training member) reach it between results."""


class FanOutError(ChuteflowError):
    """A fan-out that cannot start (no Ray installed, a cluster address that does not answer)."""


class FanOut(Protocol):
    """Runs a function over tasks; results come back in the order of the tasks."""

    name: str
    """How it is reported: ``serial``, ``ray (local, N CPUs)``, ``ray (HOST:PORT, N CPUs)``."""
    cpus: int
    """Tasks it runs at once (what a time budget is sized by)."""

    def map(
        self,
        function: Callable[[Task], Result],
        tasks: Sequence[Task],
        on_done: OnDone | None = None,
    ) -> list[Result]: ...


class SerialFanOut:
    """Every task in this process, in order: the reference the other backends must match."""

    name = "serial"
    cpus = 1

    def map(
        self,
        function: Callable[[Task], Result],
        tasks: Sequence[Task],
        on_done: OnDone | None = None,
    ) -> list[Result]:
        results = []
        if on_done is not None and tasks:  # the clock of the job's progress starts now
            on_done(0, len(tasks))
        for index, task in enumerate(tasks):
            results.append(function(task))
            if on_done is not None:
                on_done(index + 1, len(tasks))
        return results


class RayFanOut:
    """Every task a Ray task (one CPU each) on the cluster ``ray.init`` connected to."""

    def __init__(self, ray: Any, name: str, cpus: int) -> None:
        self._ray = ray
        self.name = name
        self.cpus = cpus

    def map(
        self,
        function: Callable[[Task], Result],
        tasks: Sequence[Task],
        on_done: OnDone | None = None,
    ) -> list[Result]:
        ray = self._ray
        remote = ray.remote(num_cpus=1, max_retries=0)(function)
        refs = [remote.remote(task) for task in tasks]
        position = {ref: index for index, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        pending = list(refs)
        done = 0
        if on_done is not None and refs:  # the clock of the job's progress starts now
            on_done(0, len(refs))
        while pending:
            # a heartbeat: tasks of minutes (a training member) still get periodic lines
            ready, pending = ray.wait(pending, num_returns=1, timeout=HEARTBEAT_S)
            if not ready and on_done is not None:
                on_done(done, len(refs))
            for ref in ready:
                try:
                    results[position[ref]] = ray.get(ref)
                except ray.exceptions.RayTaskError as error:
                    for other in pending:
                        ray.cancel(other)
                    # the task's own exception (a ChuteflowError keeps its one-line message)
                    raise error.cause from None
                done += 1
                if on_done is not None:
                    on_done(done, len(refs))
        return results


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise FanOutError(
            "Ray is not installed: pip install 'chuteflow[onboard]' (or run with --workers 1)"
        ) from None
    return ray


def ray_available() -> bool:
    """Whether Ray can be imported here (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


RAY_PROBE_S = 3.0
"""How long an ``--ray ADDRESS`` may take to accept a TCP connection, and then to answer as
Ray's GCS, before the command stops."""

RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"

_GCS_PROBE = """
import sys
from ray._raylet import GcsClient
try:
    GcsClient(address=sys.argv[1])
except Exception as error:
    print(str(error).splitlines()[0] if str(error) else type(error).__name__)
    sys.exit(1)
"""
"""Run in a child process: Ray reads its connect timeouts from the environment once, when it
is first imported, so only a fresh interpreter can be given short ones."""


def _probe_cluster(address: str) -> None:
    """Raise :class:`FanOutError` unless a Ray cluster answers at ``address``.

    Why: ``ray.init`` to an address where no cluster runs retries for minutes, printing Ray's
    own warnings, before it fails (``--ray 127.0.0.1:1`` was still waiting after two, and an
    address where something else listens, a Kafka broker or a web server, after 6.7). A typo,
    a stopped cluster or the wrong port is one line within seconds instead: first a TCP
    connection, then Ray's own first call (the cluster id from its GCS) in a child process with
    short timeouts, which also names a cluster that refuses this client (its auth token).
    ``auto`` (Ray finds a cluster started on this machine) and addresses without a port are
    left to Ray; a ``ray://`` address is Ray Client's port, not the GCS, so it gets the TCP
    probe only.
    """
    import socket
    import subprocess
    import sys

    client = address.startswith("ray://")
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return
    start = "start one there with `ray start --head`, or leave out --ray for a local Ray"
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_PROBE_S).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise FanOutError(f"no Ray cluster answers at {address} ({reason}); {start}") from None
    if client:
        return
    env = {
        **os.environ,
        "RAY_py_gcs_connect_timeout_s": str(int(RAY_PROBE_S)),
        "RAY_gcs_rpc_server_connect_timeout_s": "1",
    }
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _GCS_PROBE, address],
            env=env,
            capture_output=True,
            text=True,
            timeout=RAY_PROBE_S * 10,
        )
    except subprocess.TimeoutExpired:
        probe = None
    if probe is not None and probe.returncode == 0:
        return
    said = (probe.stdout.strip().splitlines() or [""])[-1] if probe is not None else ""
    if probe is None or "Timed out" in said:
        raise FanOutError(
            f"no Ray cluster answers at {address} (something listens there but does not answer "
            f"as Ray's GCS within {RAY_PROBE_S:.0f} s: the head's port is the one `ray start "
            f"--head` prints, 6379 unless --port); {start}"
        )
    raise FanOutError(f"cannot connect to Ray at {address}: {said or 'the probe failed'}")


@contextmanager
def ray_fanout(address: str | None = None, cpus: int | None = None) -> Iterator[RayFanOut]:
    """A Ray fan-out: a local Ray with ``cpus`` CPUs started here and stopped on exit
    (``address=None``), or the running cluster at ``address`` (left running)."""
    if address is None and cpus is not None and cpus < 1:
        raise FanOutError(f"a local Ray needs at least one CPU, got {cpus}")
    ray = _import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        options: dict[str, Any] = {
            # every worker, on any node, with this process's BLAS threads and kernels
            # (floor.threads): either may change the bytes a task makes
            "runtime_env": {"env_vars": process_blas_environment()},
            "include_dashboard": False,
            "logging_level": logging.WARNING,
            "log_to_driver": False,
            "configure_logging": True,
        }
        if address is None:
            options["num_cpus"] = cpus or min(2, os.cpu_count() or 1)
            # A Ray of our own, on this machine, for this command: Ray's note that it chose
            # token authentication by itself (a token left in ~/.ray) is nothing an operator
            # of `site onboard` acts on, and it was the one foreign line on its stderr
            logging.getLogger(RAY_AUTH_LOGGER).setLevel(logging.ERROR)
        else:
            _probe_cluster(address)
        try:
            # "local": always a new Ray of our own, never a cluster `ray start` left running
            ray.init(address=address or "local", **options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise FanOutError(f"cannot connect to Ray at {address or 'local'}: {first}") from None
    cpus_total = int(ray.cluster_resources().get("CPU", 0))
    where = address or "local"
    try:
        yield RayFanOut(ray, f"ray ({where}, {cpus_total} CPUs)", max(cpus_total, 1))
    finally:
        if started_here:
            ray.shutdown()


@contextmanager
def open_fanout(ray: str | None = None, workers: int | None = None) -> Iterator[FanOut]:
    """The fan-out a command asked for: ``ray`` (an address, or ``local``) -> Ray; else
    ``workers`` <= 1 -> serial; else a local Ray with ``workers`` CPUs when Ray is installed,
    serial when it is not (a plain install runs everything, only slower)."""
    if ray is not None:
        with ray_fanout(None if ray == "local" else ray, workers) as fan:
            yield fan
        return
    count = workers or min(2, os.cpu_count() or 1)
    if count <= 1 or not ray_available():
        yield SerialFanOut()
        return
    with ray_fanout(None, count) as fan:
        yield fan


__all__ = [
    "FanOut",
    "FanOutError",
    "OnDone",
    "RayFanOut",
    "SerialFanOut",
    "open_fanout",
    "ray_available",
    "ray_fanout",
]
