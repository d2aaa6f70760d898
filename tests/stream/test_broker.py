"""The broker the stream layer relies on: topics as declared, and a contract event round trip.

The ``kafka`` tests run against the session broker from ``tests/conftest.py``; the lifecycle
test starts its own local Apache Kafka to prove ``down`` really kills the JVM and ``up`` after
``down`` works (it needs mvn and java, so it is also marked ``slow``).
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chuteflow.cli import kafka
from contracts.codec import decode, encode
from contracts.events import AllocationDecided
from contracts.topics import ALL_TOPICS, ALLOCATIONS, TopicSpec, message_key
from localkafka import (
    BrokerError,
    broker_down,
    broker_status,
    broker_up,
    free_port,
    kafka_version,
    random_cluster_id,
    server_properties,
)
from stream.admin import TopicMismatchError, ensure_topics
from stream.clients import KafkaClientConfig


def _admin(bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient(KafkaClientConfig(bootstrap).confluent_config())


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="chuteflow")
    kafka.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


# --- no broker needed --------------------------------------------------------------------


def test_server_properties_bind_loopback_only_and_disable_auto_create(tmp_path: Path) -> None:
    text = server_properties(19092, 19093, tmp_path / "data")
    props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["process.roles"] == "broker,controller"
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.dirs"] == str(tmp_path / "data")


def test_server_properties_with_a_sasl_ssl_listener(tmp_path: Path) -> None:
    from localkafka.security import SaslSsl

    listener = SaslSsl(19094, tmp_path / "broker.p12", "kspw", tmp_path / "ca.pem", "u", "pw")
    text = server_properties(19092, 19093, tmp_path / "data", sasl_ssl=listener)
    props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:19092,SASL_SSL://127.0.0.1:19094,CONTROLLER://127.0.0.1:19093"
    )
    assert props["advertised.listeners"] == (
        "PLAINTEXT://127.0.0.1:19092,SASL_SSL://127.0.0.1:19094"
    )
    assert props["listener.security.protocol.map"] == (
        "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
    )
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.sasl_ssl.ssl.keystore.location"] == str(listener.keystore)
    assert "pw" not in props.values(), "the SCRAM password is in the metadata, not the config"


def test_cluster_id_is_kafka_uuid_shaped() -> None:
    for _ in range(200):
        cluster_id = random_cluster_id()
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")


def test_pom_pins_a_kafka_4_release() -> None:
    assert kafka_version().startswith("4.")


def test_cli_parses_every_kafka_command() -> None:
    assert _parse(["kafka", "up", "--port", "0"]).port == 0
    assert _parse(["kafka", "up"]).port == 9092
    for command in ("down", "status"):
        assert callable(_parse(["kafka", command]).func)
    assert _parse(["kafka", "topics", "--bootstrap", "h:1"]).bootstrap == "h:1"


def test_docker_compose_matches_the_pom_and_contracts() -> None:
    """docker-compose.yml cannot run here (no Docker daemon); at least keep it in sync."""
    import yaml

    text = (Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text()
    services = yaml.safe_load(text)["services"]
    assert {"kafka", "topics", "worker", "replay"} <= set(services)
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version()}"
    assert services["replay"]["profiles"] == ["replay"]
    # The topics come from contracts/topics.py itself: the one-shot is `chuteflow kafka topics`
    # (tests/deploy/test_compose.py runs it and checks what it created).
    assert services["topics"]["command"][:3] == ["chuteflow", "kafka", "topics"]
    # Prometheus scrapes the port the worker serves its metrics on
    command = services["worker"]["command"]
    port = command[command.index("--metrics-port") + 1]
    scrape = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "deploy/prometheus/prometheus.yml").read_text()
    )
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == [f"worker:{port}"]


# --- against the session broker ----------------------------------------------------------


@pytest.mark.kafka
def test_ensure_topics_creates_every_topic_with_declared_partitions(kafka_bootstrap: str) -> None:
    first = ensure_topics(kafka_bootstrap)
    again = ensure_topics(kafka_bootstrap)
    assert set(first) == {spec.name for spec in ALL_TOPICS}
    assert set(again.values()) == {"exists"}

    metadata = _admin(kafka_bootstrap).list_topics(timeout=10)
    for spec in ALL_TOPICS:
        assert spec.name in metadata.topics, spec.name
        assert len(metadata.topics[spec.name].partitions) == spec.partitions, spec.name


@pytest.mark.kafka
def test_existing_topic_with_other_partition_count_is_an_error(kafka_bootstrap: str) -> None:
    name = f"chuteflow.test-mismatch.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [TopicSpec(name, 1, ())])
    with pytest.raises(TopicMismatchError, match=f"{name} has 1 partitions"):
        ensure_topics(kafka_bootstrap, [TopicSpec(name, 3, ())])


@pytest.mark.kafka
def test_topic_configs_are_set_on_create_and_checked_on_existing_topics(
    kafka_bootstrap: str,
) -> None:
    compact = (("cleanup.policy", "compact"),)
    plain = f"chuteflow.test-config.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [TopicSpec(plain, 1, ())])
    with pytest.raises(TopicMismatchError, match=f"{plain} has cleanup.policy=delete"):
        ensure_topics(kafka_bootstrap, [TopicSpec(plain, 1, (), configs=compact)])
    compacted = f"chuteflow.test-config.{uuid.uuid4().hex[:8]}"
    spec = TopicSpec(compacted, 1, (), configs=compact)
    assert ensure_topics(kafka_bootstrap, [spec]) == {compacted: "created"}
    assert ensure_topics(kafka_bootstrap, [spec]) == {compacted: "exists"}


def _decision(site_id: str) -> AllocationDecided:
    return AllocationDecided(
        event_id=str(uuid.uuid4()),
        event_time=datetime(2026, 3, 2, 8, 15, tzinfo=UTC),
        site_id=site_id,
        decision_id=f"{site_id}-i7-greedy-1",
        interval_index=7,
        interval_start=datetime(2026, 3, 2, 8, 15, tzinfo=UTC),
        chute_map={"C001": "DEST-A", "C002": "DEST-A", "C003": "DEST-B"},
        chutes_per_destination={"DEST-A": 2, "DEST-B": 1, "DEST-C": 0},
        policy_name="greedy",
        policy_version="1",
        guardrail_version="g1",
        solver_status="optimal",
    )


@pytest.mark.kafka
def test_allocation_decided_round_trips_through_kafka(kafka_bootstrap: str) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    ensure_topics(kafka_bootstrap, [ALLOCATIONS])
    site_id = f"SITE-{uuid.uuid4().hex[:6]}"
    event = _decision(site_id)

    client = KafkaClientConfig(kafka_bootstrap)
    producer = Producer(client.confluent_config({"acks": "all"}))
    delivered: list[Any] = []
    producer.produce(
        ALLOCATIONS.name,
        key=message_key(site_id),
        value=encode(event),
        on_delivery=lambda err, msg: delivered.append((err, msg)),
    )
    assert producer.flush(15) == 0
    [(error, record)] = delivered
    assert error is None

    consumer = Consumer(
        client.confluent_config(
            {
                "group.id": f"test-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    try:
        # Read exactly where the broker said it stored the record: earlier tests of the session
        # may have filled the topic, so scanning from the start could time out.
        consumer.assign([TopicPartition(ALLOCATIONS.name, record.partition(), record.offset())])
        received = None
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            if message.key() == message_key(site_id):
                received = message
                break
        assert received is not None, "the record did not come back within 30 s"
        assert received.partition() == record.partition()
        value = received.value()
        assert value is not None
        assert decode(value, ALLOCATIONS) == event
    finally:
        consumer.close()


# --- the local broker's own lifecycle ----------------------------------------------------


def _process_exists(pid: int) -> bool:
    """Like ``ps -p``, but a zombie (exited, not yet reaped by init) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.kafka
@pytest.mark.slow
def test_local_broker_down_kills_the_jvm_and_up_again_keeps_topics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.environ.get("CHUTEFLOW_SKIP_KAFKA") == "1":
        pytest.skip("CHUTEFLOW_SKIP_KAFKA=1")
    state = tmp_path / "state"
    try:
        bootstrap = broker_up(port=0, state_dir=state)
        status = broker_status(state_dir=state)
        assert status["running"] and status["bootstrap"] == bootstrap
        assert broker_up(port=0, state_dir=state) == bootstrap, "up must be idempotent"
        # the CLI with another --port: the running broker's address, and a note that says so
        other = int(bootstrap.rpartition(":")[2]) + 1
        args = _parse(["kafka", "up", "--port", str(other), "--state-dir", str(state)])
        assert args.func(args) == 0
        out, err = capsys.readouterr()
        assert out.splitlines()[0] == bootstrap
        assert f"already runs on {bootstrap}, not --port {other}" in err
        spec = TopicSpec("chuteflow.test-lifecycle.v1", 2, ())
        assert ensure_topics(bootstrap, [spec]) == {spec.name: "created"}

        args = _parse(["kafka", "down", "--state-dir", str(state)])
        assert args.func(args) == 0
        assert capsys.readouterr().out.strip() == "stopped"
        assert not _process_exists(status["pid"]), "the JVM survived broker_down"
        assert not broker_status(state_dir=state)["running"]

        bootstrap = broker_up(port=0, state_dir=state)
        assert ensure_topics(bootstrap, [spec]) == {spec.name: "exists"}
        args = _parse(["kafka", "status", "--state-dir", str(state)])
        assert args.func(args) == 0
        assert json.loads(capsys.readouterr().out)["bootstrap"] == bootstrap
    finally:
        broker_down(state_dir=state)
    assert not broker_status(state_dir=state)["running"]


@pytest.mark.kafka
@pytest.mark.slow
def test_local_broker_up_right_after_down_on_the_same_port(tmp_path: Path) -> None:
    """``down`` then ``up`` on the same port at once: the connections the old broker closed
    linger in TIME-WAIT/FIN-WAIT-2 on that port and must not block the new start, while a
    port that another process really listens on is refused with one clear line."""
    import socket

    if os.environ.get("CHUTEFLOW_SKIP_KAFKA") == "1":
        pytest.skip("CHUTEFLOW_SKIP_KAFKA=1")
    state = tmp_path / "state"
    port = free_port()
    try:
        bootstrap = broker_up(port, state_dir=state)
        # Clients connected while the broker stops: the broker closes first, so its side of
        # each connection is what lingers on the port (the case that used to refuse `up`).
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        try:
            assert broker_down(state_dir=state)
            assert broker_up(port, state_dir=state) == bootstrap
        finally:
            for client in clients:
                client.close()
        assert len(_admin(bootstrap).list_topics(timeout=10).brokers) == 1
    finally:
        broker_down(state_dir=state)

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        with pytest.raises(BrokerError) as caught:
            broker_up(taken, state_dir=tmp_path / "other")
    message = str(caught.value)
    assert message == (
        f"port {taken} on 127.0.0.1 is in use: another process listens on it; "
        "stop it or pass another --port"
    )
