"""Every Kafka client over SASL_SSL (SCRAM-SHA-512 on TLS) against a real broker, and a wrong
password as one line with exit code 2 instead of a hang.

The module starts its own local Apache Kafka with a SASL_SSL listener (``broker_up(...,
sasl_ssl=True)``: throw-away CA, SCRAM user made at storage format time) on free ports with its
own state directory, and stops it by PID at the end. Clients use only the SASL_SSL listener,
configured from the client properties file the broker writes, the way an operator configures
``chuteflow ... --kafka-config FILE``.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.codec import decode
from contracts.events import AllocationDecided
from contracts.topics import ALLOCATIONS
from floor.daytypes import default_groups
from floor.scenario import load_scenario
from localkafka import broker_down, broker_status, broker_up, client_config_path
from replay.loop import day_type_group, replay_day
from replay.workers import chuteflow_command, start_worker, stop_worker
from stream.admin import ensure_topics
from stream.clients import KafkaAuthError, KafkaClientConfig, env_without_kafka_security
from tests.stream.readers import TopicReader
from twin.groups import sample_day

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

WRONG = "not-the-password"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The client properties file of a fresh SASL_SSL broker (topics created through it)."""
    if os.environ.get("CHUTEFLOW_SKIP_KAFKA") == "1":
        pytest.skip("CHUTEFLOW_SKIP_KAFKA=1")
    state = tmp_path_factory.mktemp("kafka-sasl-ssl")
    try:
        broker_up(port=0, state_dir=state, sasl_ssl=True, timeout=90.0)
        path = client_config_path(state_dir=state)
        assert broker_status(state_dir=state)["client_config"] == str(path)
        ensure_topics(KafkaClientConfig.load(config_file=path, environ={}))
        yield path
    finally:
        broker_down(state_dir=state)


def _client(path: Path) -> KafkaClientConfig:
    return KafkaClientConfig.load(config_file=path, environ={})


def test_worker_and_replay_over_sasl_ssl(secured: Path, tmp_path: Path) -> None:
    client = _client(secured)
    assert client.security_protocol == "SASL_SSL"
    assert client.sasl_mechanism == "SCRAM-SHA-512"
    scenario = load_scenario("small")
    groups = default_groups(scenario)
    demand = sample_day(groups, 2, scenario, seed=5)

    # The worker gets the settings as KAFKA_* variables (start_worker); its faust app talks
    # SCRAM over TLS to the SASL_SSL port, the only address any client here is given.
    process = start_worker(
        client, ["small"], tmp_path / "worker", app_id=f"sec-{uuid.uuid4().hex[:8]}"
    )
    try:
        independent = TopicReader(client, ALLOCATIONS)
        result = replay_day(demand, 5, client, day_type_group(groups, demand), max_intervals=3)
        site = scenario.site_id.encode()
        records = independent.read_until(lambda r: sum(k == site for k, _ in r) >= 3, 15)
        independent.close()
    finally:
        stop_worker(process)
    assert [a.interval_index for a in result.allocations] == [0, 1, 2]
    seen = [decode(v) for k, v in records if k == site]
    assert all(isinstance(event, AllocationDecided) for event in seen)
    assert sorted(e.interval_index for e in seen if isinstance(e, AllocationDecided))[:3] == [
        0,
        1,
        2,
    ]


def _bad_properties(secured: Path, tmp_path: Path) -> Path:
    text = secured.read_text().replace(f"sasl.password={_client(secured).sasl_password}", "")
    path = tmp_path / "bad.properties"
    path.write_text(text + f"sasl.password={WRONG}\n")
    return path


def _run(argv: list[str], env: dict[str, str], timeout: float = 40.0) -> tuple[int, str, float]:
    started = time.monotonic()
    result = subprocess.run(
        [chuteflow_command(), *argv], env=env, capture_output=True, text=True, timeout=timeout
    )
    return result.returncode, result.stderr, time.monotonic() - started


def test_a_wrong_password_is_one_line_and_exit_code_2(secured: Path, tmp_path: Path) -> None:
    good = _client(secured)
    expected = f"chuteflow: Kafka authentication failed for user chuteflow at {good.bootstrap} ("

    # in process: the check every Kafka process runs first
    bad = KafkaClientConfig.from_properties({**good.properties(), "sasl.password": WRONG})
    started = time.monotonic()
    with pytest.raises(KafkaAuthError, match="SASL authentication error"):
        ensure_topics(bad, timeout=30)
    assert time.monotonic() - started < 10

    # `chuteflow kafka topics --kafka-config FILE` with a wrong password in the file
    env = env_without_kafka_security(os.environ)
    code, stderr, took = _run(
        ["kafka", "topics", "--kafka-config", str(_bad_properties(secured, tmp_path))], env
    )
    assert (code, stderr.count("\n")) == (2, 1), stderr
    assert stderr.startswith(expected) and "SCRAM-SHA-512" in stderr, stderr
    assert WRONG not in stderr
    assert took < 20, f"kafka topics took {took:.1f} s to refuse the password"

    # `chuteflow worker` with the password from the environment (the Kubernetes-secret way)
    env |= good.to_env() | {"KAFKA_SASL_PASSWORD": WRONG}
    code, stderr, took = _run(["worker", "--scenario", "small", "--app-id", "sec-bad"], env)
    assert (code, stderr.count("\n")) == (2, 1), stderr
    assert stderr.startswith(expected), stderr
    assert WRONG not in stderr
    assert took < 30, f"the worker took {took:.1f} s to refuse the password"
