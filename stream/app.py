"""The faust application of ``chuteflow worker``: broker, topics and the site-state table.

Settings that matter and why:

- ``value_serializer="raw"``/``key_serializer="raw"``: records are decoded by
  ``contracts.codec`` (JSON, one error type to dead-letter), never by faust Records or pickle.
- Topics are taken from ``contracts.topics`` with their explicit partition counts; the input
  topics are created beforehand (:func:`stream.admin.ensure_topics`, called by the worker at
  start) because faust would not create them (``docs/design-facts.md#faust-topics``).
- The site-state table uses ``json`` for keys and values (faust's default would be pickle-free
  too, but explicit is the point) and has as many partitions as the input topics, so a site's
  table partition is its input partition and moves with it in a rebalance.
- ``store="memory://"``: the table is rebuilt from its changelog topic at start; no RocksDB.
- ``producer_linger=0``: an allocation goes out at once; the closed loop waits for it.
- The consumer is :class:`stream.batching.BatchConsumer`: the input topics reach the handler
  one fetch at a time instead of through faust's per-record stream machinery (the measured
  bottleneck), with ``broker_max_poll_records``/``consumer_max_fetch_size`` raised so that a
  fetch can hold a whole interval of a large site (~6k records of ~220 bytes per topic).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust

from contracts.topics import ALL_TOPICS, PARTITIONS, TopicSpec
from stream.batching import install as install_batch_consumer
from stream.clients import KafkaClientConfig

DEFAULT_APP_ID = "chuteflow-worker"
"""The consumer group: workers with the same id share the site partitions."""
TABLE_NAME = "site-state"


CHANGELOG_TUNING = (("segment.ms", "60000"), ("min.cleanable.dirty.ratio", "0.1"))
"""Compacted soon (set on creation; a changelog an older version made keeps its own, and a
worker still starts): Kafka compacts only closed segments, and a segment closes
after a week by default. A fleet worker writes each of its sites' snapshots (~100 KB, mostly
the duplicate window) every commit, so without this a site's next owner read every snapshot
written since the topic began (``bench fleet --kill-one``: 19.6 s to the first site taken
over, most of it recovery). With a one-minute segment the cleaner keeps about the last
snapshot per site plus a minute of writes."""


def changelog_topic(app_id: str = DEFAULT_APP_ID) -> TopicSpec:
    """The site-state table's changelog, named and configured as faust derives it
    (``{app id}-{table name}-changelog``, the table's partition count, compacted), so that
    ``chuteflow kafka topics`` can create it and a worker on a cluster with ACLs needs no
    permission to create topics. faust skips creating a topic that exists."""
    return TopicSpec(
        f"{app_id}-{TABLE_NAME}-changelog",
        PARTITIONS,
        (),
        configs=(("cleanup.policy", "compact"),),
        tuning=CHANGELOG_TUNING,
    )


def worker_topics(app_id: str = DEFAULT_APP_ID) -> tuple[TopicSpec, ...]:
    """Every topic a worker of group ``app_id`` reads or writes: chuteflow's own and faust's
    changelog. faust's other internal topic, the leader-assignor topic, is switched off
    (``topic_disable_leader``: chuteflow does not use a group leader)."""
    return (*ALL_TOPICS, changelog_topic(app_id))


def bootstrap_from_env(default: str = "127.0.0.1:9092") -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", default)


@dataclass(frozen=True)
class AppSettings:
    """How the worker's faust app talks to Kafka."""

    bootstrap: str
    """Kafka bootstrap servers, ``host:port[,host:port]``."""
    app_id: str = DEFAULT_APP_ID
    """faust app id = consumer group id = prefix of the table changelog topic."""
    offset_reset: str = "earliest"
    """Where a group without committed offsets starts: ``earliest`` loses nothing;
    ``latest`` skips history (tests use it with a fresh group per test)."""
    instance_id: str | None = None
    """Static group membership (KIP-345): a worker restarted with the same id takes its
    partitions back at once, without waiting for the dead member's session to expire or a
    rebalance. One id per worker slot (e.g. a StatefulSet pod name); two live workers with one
    id fence each other."""
    session_timeout_s: float = 10.0
    """How long the group waits for a silent member before handing its sites to another
    worker (a replacement without the dead worker's instance id). Kafka's minimum is 6 s."""
    client: KafkaClientConfig | None = None
    """TLS/SASL settings (:mod:`stream.clients`); its ``bootstrap`` must be ``bootstrap``.
    None: PLAINTEXT to ``bootstrap``."""

    def __post_init__(self) -> None:
        if self.client is not None and self.client.bootstrap != self.bootstrap:
            raise ValueError(
                f"AppSettings: bootstrap {self.bootstrap!r} but client {self.client.bootstrap!r}"
            )

    def kafka_client(self) -> KafkaClientConfig:
        """How every Kafka client of the worker connects (faust app, topic admin)."""
        return self.client if self.client is not None else KafkaClientConfig(self.bootstrap)


DEFAULT_DATADIR = Path(tempfile.gettempdir()) / "chuteflow-faust"


def make_app(settings: AppSettings) -> faust.App:
    """A faust App; agents and the table are attached by :func:`stream.agents.register`."""
    DEFAULT_DATADIR.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app: faust.App = faust.App(
        settings.app_id,
        # broker URL and, with TLS/SASL, broker_credentials (SASLCredentials/SSLCredentials)
        **settings.kafka_client().faust_app_kwargs(),
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        # faust writes a small data folder per app id; keep it out of the working directory
        # (FAUST_DATADIR, faust's own variable, still wins).
        datadir=os.environ.get("FAUST_DATADIR", str(DEFAULT_DATADIR / "{conf.name}-data")),
        web_enabled=False,
        # faust's "{id}-__assignor-__leader" topic serves app.is_leader(), which chuteflow
        # never asks; without it the worker needs no topic of its own beyond the changelog.
        topic_disable_leader=True,
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        consumer_auto_offset_reset=settings.offset_reset,
        producer_linger=0.0,
        broker_commit_every=10_000,
        stream_buffer_maxsize=16_384,
        broker_max_poll_records=20_000,
        consumer_group_instance_id=settings.instance_id,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 4),
        consumer_max_fetch_size=8 * 1024 * 1024,
    )
    install_batch_consumer(app)
    return app


def make_table(app: faust.App) -> Any:
    """Site id -> the site's JSON snapshot (``stream.processor.SiteRuntime.snapshot``)."""
    return app.Table(
        TABLE_NAME,
        default=None,
        partitions=PARTITIONS,
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
    )
