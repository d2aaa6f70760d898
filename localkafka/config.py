"""The broker's configuration files: a single-node KRaft ``server.properties`` and log4j2.

Pure text; nothing here touches the file system or starts a process.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from localkafka.security import MECHANISM

if TYPE_CHECKING:
    from localkafka.security import SaslSsl


def random_cluster_id() -> str:
    """A KRaft cluster id as Kafka's ``Uuid.randomUuid`` makes it: 16 random bytes, URL-safe
    base64 without padding, never starting with ``-`` (it would read as a CLI flag)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text


def server_properties(
    port: int,
    controller_port: int,
    data_dir: Path,
    *,
    auto_create_topics: bool = False,
    sasl_ssl: SaslSsl | None = None,
) -> str:
    """The single-node KRaft configuration.

    Replication factors and min ISR are 1 because there is one node. ``auto.create.topics``
    is off: a topic that springs into being with one partition (what faust's agents trigger,
    see ``docs/design-facts.md#faust-topics``) must be a loud error, not a silent
    PartitionsMismatch later; every topic
    is created by :func:`stream.admin.ensure_topics`, and faust creates its changelog and
    leader topics itself through the admin API. Internal topics get 6 partitions instead of
    50 so the first consumer group on a fresh broker is ready in well under a second.

    With ``sasl_ssl`` a second client listener, ``SASL_SSL`` (TLS with the broker's PKCS#12
    keystore, SCRAM-SHA-512), runs beside PLAINTEXT; the controller and inter-broker
    listeners stay PLAINTEXT (see :mod:`localkafka.security`).
    """
    client_listeners = [f"PLAINTEXT://127.0.0.1:{port}"]
    protocols = ["PLAINTEXT:PLAINTEXT"]
    if sasl_ssl is not None:
        client_listeners.append(f"SASL_SSL://127.0.0.1:{sasl_ssl.port}")
        protocols.append("SASL_SSL:SASL_SSL")
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": ",".join([*client_listeners, f"CONTROLLER://127.0.0.1:{controller_port}"]),
        "advertised.listeners": ",".join(client_listeners),
        "listener.security.protocol.map": ",".join([*protocols, "CONTROLLER:PLAINTEXT"]),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "true" if auto_create_topics else "false",
        "delete.topic.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "6",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
    }
    if sasl_ssl is not None:
        prefix = "listener.name.sasl_ssl."
        lines |= {
            f"{prefix}sasl.enabled.mechanisms": MECHANISM,
            f"{prefix}{MECHANISM.lower()}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            f"{prefix}ssl.keystore.type": "PKCS12",
            f"{prefix}ssl.keystore.location": str(sasl_ssl.keystore),
            f"{prefix}ssl.keystore.password": sasl_ssl.keystore_password,
            f"{prefix}ssl.key.password": sasl_ssl.keystore_password,
        }
    body = "\n".join(f"{key}={value}" for key, value in lines.items())
    return "# Written by localkafka on every start; edits are overwritten.\n" + body + "\n"


LOG4J2 = """\
# Written by localkafka: everything to logs/server.log, rolled at 20 MB, 3 kept.
status = warn
# Kafka's own shutdown hook logs its clean shutdown; log4j's hook would close the file first.
shutdownHook = disable
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka-request.name = kafka.request.logger
logger.kafka-request.level = WARN
logger.state-change.name = state.change.logger
logger.state-change.level = WARN
"""

__all__ = ["LOG4J2", "random_cluster_id", "server_properties"]
