"""Start and stop ``chuteflow worker`` processes for tests and ``bench replay``.

A worker runs as its own process, started through the installed ``chuteflow`` command
(``chuteflow worker``) exactly as an operator starts one: faust owns its event loop and signal
handlers, and nothing here depends on where the source tree is. It is stopped by PID: SIGTERM,
then SIGKILL, because a faust worker that crashed during start-up can ignore SIGTERM
(``docs/design-facts.md#faust-sigterm``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from floor.errors import ChuteflowError
from stream.clients import KafkaClientConfig, as_client, env_without_kafka_security


class WorkerError(ChuteflowError):
    """A worker did not start or become ready; the message says why (with its log's tail)."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far, all its threads
    (``/proc/PID/stat``; OSError where there is no procfs). The benches judge a worker by it."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # after "pid (comm) ": state is field 3, utime and stime are fields 14 and 15 (man 5 proc)
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_ticks() -> tuple[int, int] | None:
    """``(busy, total)`` clock ticks of every CPU of the machine so far (``/proc/stat``), None
    where there is no procfs. Over the replay, busy / total says whether the lockstep was short
    of CPU (driver, worker and broker share the cores: ~1.0) or waiting on something else."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def chuteflow_command() -> str:
    """The installed ``chuteflow`` script: the one next to the running interpreter (its venv),
    else the first on ``PATH``.

    Raises:
        WorkerError: chuteflow is not installed (``pip install .`` or ``pip install -e .``).
    """
    beside = Path(sys.executable).parent / "chuteflow"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("chuteflow")
    if found is None:
        raise WorkerError(
            f"the chuteflow command is not installed (not in {beside.parent} nor on PATH): "
            "run `pip install -e .` in the repository to start workers"
        )
    return found


def start_worker(
    bootstrap: str | KafkaClientConfig,
    scenarios: Sequence[str],
    workdir: Path,
    *,
    app_id: str,
    policy: str = "proportional",
    offset_reset: str = "latest",
    timeout_s: float = 60.0,
    extra: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """A worker process, returned once it owns its partitions (its ready file exists).

    ``bootstrap`` is a PLAINTEXT address or a :class:`~stream.clients.KafkaClientConfig`; the
    worker gets the connection settings as ``KAFKA_*`` environment variables (never on its
    command line, where ``ps`` shows them), and only those: the caller's own ``KAFKA_*``
    security variables are not passed on.
    """
    client = as_client(bootstrap)
    workdir.mkdir(parents=True, exist_ok=True)
    executable = chuteflow_command()
    ready = workdir / f"{app_id}.ready"
    ready.unlink(missing_ok=True)
    log = (workdir / f"{app_id}.log").open("wb")
    command = [executable, "worker", "--bootstrap", client.bootstrap]
    for scenario in scenarios:
        command += ["--scenario", scenario]
    command += ["--policy", policy, "--app-id", app_id, "--offset-reset", offset_reset]
    command += ["--ready-file", str(ready), *extra]
    env = env_without_kafka_security(os.environ) | client.to_env()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    deadline = time.monotonic() + timeout_s
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_worker(process)
            tail = (workdir / f"{app_id}.log").read_text(errors="replace")[-3000:]
            raise WorkerError(f"worker {app_id} did not become ready:\n{tail}")
        time.sleep(0.1)
    if not wait_consuming(client, max(1.0, deadline - time.monotonic())):
        stop_worker(process)
        tail = (workdir / f"{app_id}.log").read_text(errors="replace")[-3000:]
        raise WorkerError(f"worker {app_id} is not consuming every input partition:\n{tail}")
    return process


PROBE = b"\xff chuteflow readiness probe"


def wait_consuming(bootstrap: str | KafkaClientConfig, timeout_s: float) -> bool:
    """True once a probe sent to every input partition came back dead-lettered.

    The ready file is written when partitions are assigned, but a group without committed
    offsets fixes where it starts reading (``latest``) only at its first fetch: a day published
    in between would be skipped. An undecodable probe per partition, re-sent until the dead
    letters show it, proves the worker reads past that point everywhere.
    """
    from confluent_kafka import Consumer, Producer, TopicPartition

    from contracts.topics import DEAD_LETTER
    from stream.processor import INPUT_TOPICS

    missing = {(spec.name, p) for spec in INPUT_TOPICS for p in range(spec.partitions)}
    client = as_client(bootstrap)
    producer = Producer(client.confluent_config())
    consumer = Consumer(client.confluent_config({"group.id": f"probe-{os.getpid()}"}))
    start = []
    for p in range(DEAD_LETTER.partitions):
        _, high = consumer.get_watermark_offsets(TopicPartition(DEAD_LETTER.name, p), timeout=10)
        start.append(TopicPartition(DEAD_LETTER.name, p, high))
    consumer.assign(start)
    deadline = time.monotonic() + timeout_s
    try:
        while missing and time.monotonic() < deadline:
            for topic, partition in sorted(missing):
                producer.produce(topic, PROBE, key=b"probe", partition=partition)
            producer.flush(10)
            resend = time.monotonic() + 2.0
            while missing and time.monotonic() < min(resend, deadline):
                message = consumer.poll(0.2)
                if message is None or message.error() is not None:
                    continue
                body = json.loads(message.value() or b"{}")
                if body.get("value_base64") == base64.b64encode(PROBE).decode("ascii"):
                    missing.discard((body["topic"], int(body["partition"])))
    finally:
        consumer.close()
    return not missing


def stop_worker(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL by PID; returns once the process is reaped."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(10.0)


@contextlib.contextmanager
def running_worker(
    bootstrap: str | KafkaClientConfig,
    scenarios: Sequence[str],
    workdir: Path,
    *,
    app_id: str,
    **kwargs: object,
) -> Iterator[subprocess.Popen[bytes]]:
    process = start_worker(bootstrap, scenarios, workdir, app_id=app_id, **kwargs)  # type: ignore[arg-type]
    try:
        yield process
    finally:
        stop_worker(process)
