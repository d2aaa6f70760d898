"""``/healthz`` and ``/readyz`` on the metrics port, and the topics a worker needs made for it.

In memory: every reason :class:`stream.health.Readiness` gives, through the real HTTP server.
Through a real broker: ``chuteflow kafka topics --app-id`` makes every topic the worker uses
(faust's changelog included), a worker started after it creates none, and its ``/readyz``
answers 503 before its partitions are assigned and 200 after.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from contracts.topics import PARTITIONS
from localkafka.launcher import free_port
from replay.workers import chuteflow_command, stop_worker
from stream.app import changelog_topic
from stream.health import Readiness, serve
from stream.metrics import WorkerMetrics
from stream.processor import StreamProcessor


def _get(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read() or b"{}")


def _topics(admin: AdminClient) -> set[str]:
    return {str(t) for t in admin.list_topics(timeout=10).topics if not str(t).startswith("__")}


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def test_readiness_says_why_until_assigned_loaded_and_caught_up() -> None:
    lag: dict[tuple[str, int], int | None] = {("t", 0): None, ("t", 1): 5}
    readiness = Readiness(lag=lambda: lag, max_lag=10)
    metrics = WorkerMetrics(StreamProcessor({}), readiness.lag, readiness.ready)
    port = free_port()
    server = serve(metrics.registry, readiness, port, addr="127.0.0.1")
    try:
        assert _get(port, "/healthz") == (200, {"status": "alive"})
        assert _get(port, "/readyz") == (503, {"ready": False, "status": "policies not loaded"})
        readiness.policies_loaded = True
        assert _get(port, "/readyz")[1]["status"] == "partitions not assigned"
        readiness.assigned = True
        assert _get(port, "/readyz")[1]["status"] == "end offset not fetched yet: t/0"
        lag[("t", 0)] = 11
        assert _get(port, "/readyz")[1]["status"] == "behind by more than 10 records: t/0 11"
        text = _metrics(port)
        assert "chuteflow_ready 0.0" in text
        lag[("t", 0)] = 10
        assert _get(port, "/readyz") == (200, {"ready": True, "status": "ready"})
        text = _metrics(port)
        assert "chuteflow_ready 1.0" in text
        assert 'chuteflow_consumer_lag_records{partition="0",topic="t"} 10.0' in text
        readiness.loop_turned -= 3600  # a blocked event loop
        assert _get(port, "/healthz")[0] == 503
        assert _get(port, "/nothing")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.kafka
def test_a_metrics_port_in_use_is_one_line() -> None:
    """A second worker on a host with the same ``--metrics-port`` died with a traceback."""
    from prometheus_client import CollectorRegistry

    from floor.errors import ChuteflowError

    first = serve(CollectorRegistry(), None, 0, addr="127.0.0.1")
    taken = first.server_address[1]
    try:
        with pytest.raises(ChuteflowError, match=f"--metrics-port {taken}: cannot listen on"):
            serve(CollectorRegistry(), None, taken, addr="127.0.0.1")
    finally:
        first.shutdown()
        first.server_close()


def test_topics_made_beforehand_and_readyz_503_before_assignment_then_200(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    app_id = f"health-{uuid.uuid4().hex[:8]}"
    chuteflow = chuteflow_command()
    made = subprocess.run(
        [chuteflow, "kafka", "topics", "--bootstrap", kafka_bootstrap, "--app-id", app_id],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    changelog = changelog_topic(app_id)
    assert f"{changelog.name}\tcreated" in made
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    before = _topics(admin)
    assert len(admin.list_topics(timeout=10).topics[changelog.name].partitions) == PARTITIONS

    port = free_port()
    log = (tmp_path / "worker.log").open("wb")
    command = [chuteflow, "worker", "--bootstrap", kafka_bootstrap, "--scenario", "small"]
    command += ["--app-id", app_id, "--metrics-port", str(port), "--offset-reset", "latest"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    worker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    answers: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while (not answers or answers[-1] != 200) and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
            with contextlib.suppress(urllib.error.URLError, ConnectionError):  # not up yet
                answers.append(_get(port, "/readyz")[0])
            time.sleep(0.05)
        assert _get(port, "/healthz")[0] == 200
    finally:
        stop_worker(worker)
    assert answers and answers[0] == 503, answers[:5]
    assert answers[-1] == 200, (tmp_path / "worker.log").read_text()[-2000:]
    assert set(answers) == {503, 200} and answers.index(200) > 0
    # 503 then 200, never back: the worker is ready once
    assert answers[answers.index(200) :] == [200]
    # The worker created no topic: everything it uses was made by `kafka topics` (the
    # broker's own __consumer_offsets aside).
    assert _topics(admin) == before
