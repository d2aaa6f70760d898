"""A real, single-node Apache Kafka broker for tests and local runs, without Docker.

Why this exists: the reliability claims of the stream layer (ordering per site, consumer-group
hand-over, faust table recovery) only mean something against Apache Kafka itself. Protocol
re-implementations differ in exactly those corners, and Docker is not available everywhere
(CI here has no daemon). Maven Central is, so the broker's jars are resolved from
``localkafka/pom.xml`` once into a cache directory and started as one JVM in KRaft mode
(``process.roles=broker,controller``): no ZooKeeper, no second process.

This is tooling around the worker, not part of it: ``stream`` holds only the worker's Kafka
I/O and works against any broker. The modules:

- :mod:`localkafka.jars`: the pinned version and Maven resolution of the jars;
- :mod:`localkafka.config`: ``server.properties`` and log4j2 configuration (pure text);
- :mod:`localkafka.launcher`: start, wait for, stop and inspect the JVM by PID;
- :mod:`localkafka.security`: the optional SASL_SSL listener's CA, keystore and SCRAM user.

Layout (``home`` defaults to ``~/.cache/chuteflow/kafka-<version>``; env
``CHUTEFLOW_KAFKA_HOME`` overrides it)::

    <home>/libs/             jars from Maven (a ``.complete`` marker guards half copies)
    <home>/state/            default state directory; tests pass their own temp dir
        server.properties    written on every start
        log4j2.properties
        data/                log.dirs (KRaft metadata log and topic partitions)
        logs/server.log      broker log; logs/kafka.out is the JVM's stdout/stderr
        kafka.pid            PID of the running JVM
        broker.json          bootstrap address and ports of the running broker
        tls/                 with --sasl-ssl: throw-away CA, broker keystore, passwords
        client-sasl-ssl.properties   with --sasl-ssl: client config for --kafka-config

Data in ``data/`` survives ``broker_down``/``broker_up``: topics created once stay. Delete the
state directory for a clean broker.

Everything binds to 127.0.0.1 only: the broker is for this machine, never a network service.
"""

from localkafka.config import random_cluster_id, server_properties
from localkafka.errors import BrokerError
from localkafka.jars import POM, ensure_jars, kafka_home, kafka_version
from localkafka.launcher import (
    DEFAULT_PORT,
    broker_down,
    broker_status,
    broker_up,
    client_config_path,
    free_port,
    temporary_broker,
)

__all__ = [
    "DEFAULT_PORT",
    "POM",
    "BrokerError",
    "broker_down",
    "broker_status",
    "broker_up",
    "client_config_path",
    "ensure_jars",
    "free_port",
    "kafka_home",
    "kafka_version",
    "random_cluster_id",
    "server_properties",
    "temporary_broker",
]
