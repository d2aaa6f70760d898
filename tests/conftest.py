"""Kafka fixtures shared by every test that needs a broker (mark those ``@pytest.mark.kafka``).

Where the broker comes from, first match wins:

1. ``KAFKA_BOOTSTRAP_SERVERS`` is set: that broker is used as it is (nothing is started).
2. A Docker daemon answers within a second: testcontainers' ``KafkaContainer`` (KRaft).
3. Otherwise the real Apache Kafka from :mod:`localkafka` (jars from Maven Central) on a
   free port with a temporary state directory, stopped by PID at the end of the session.

If none works the fixture FAILS with the reason: a CI run without Kafka must not pass by
skipping. ``CHUTEFLOW_SKIP_KAFKA=1`` is the explicit opt-out that turns it into a skip.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

# Before numpy loads anywhere in the session: one BLAS thread, as the CLI does at start.
from floor.threads import pin_blas

pin_blas()

import pytest  # noqa: E402 (after the thread limit: pytest plugins may import numpy)


def _docker_answers() -> bool:
    """A quick ping, never a hang: only try when a socket or DOCKER_HOST exists at all."""
    if not (os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import docker

            client = docker.from_env(timeout=1)
            try:
                return bool(client.ping())
            finally:
                client.close()
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a running Kafka broker for the whole test session."""
    if os.environ.get("CHUTEFLOW_SKIP_KAFKA") == "1":
        pytest.skip("CHUTEFLOW_SKIP_KAFKA=1: Kafka tests skipped on request")

    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return

    if _docker_answers():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from testcontainers.community.kafka import KafkaContainer

            image = os.environ.get("CHUTEFLOW_KAFKA_IMAGE", "confluentinc/cp-kafka:7.6.0")
            container = KafkaContainer(image).with_kraft()
            container.start()
        try:
            yield container.get_bootstrap_server()
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                container.stop()
        return

    from localkafka import BrokerError, broker_down, broker_up

    state = tmp_path_factory.mktemp("kafka-state")
    try:
        bootstrap = broker_up(port=0, state_dir=state, timeout=90.0)
    except BrokerError as error:
        reason = str(error)
    else:
        reason = ""
    if reason:
        broker_down(state_dir=state)
        pytest.fail(
            "no Kafka broker for tests: KAFKA_BOOTSTRAP_SERVERS is unset, no Docker daemon "
            f"answers, and the local Apache Kafka did not start:\n{reason}\n"
            "(set CHUTEFLOW_SKIP_KAFKA=1 to skip Kafka tests on purpose)",
            pytrace=False,
        )
    try:
        yield bootstrap
    finally:
        broker_down(state_dir=state)


@pytest.fixture(scope="session")
def kafka_topics(kafka_bootstrap: str) -> str:
    """``kafka_bootstrap`` with every topic of ``contracts.topics.ALL_TOPICS`` created."""
    from stream.admin import ensure_topics

    ensure_topics(kafka_bootstrap)
    return kafka_bootstrap


def require_tool(name: str) -> str:
    """The path of system tool ``name`` (promtool, chromium, ...), installed by
    ``scripts/system-deps``. Missing: a skip on a laptop, a failure in CI
    (``CHUTEFLOW_REQUIRE_SYSTEM_TOOLS=1``), so CI cannot pass by skipping."""
    import shutil

    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found: run scripts/system-deps {name}"
    if os.environ.get("CHUTEFLOW_REQUIRE_SYSTEM_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)
