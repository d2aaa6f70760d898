"""The AsyncAPI 3.0 document of chuteflow's Kafka interface, generated from the contracts.

Topics (``contracts/topics.py``), their record types and JSON Schemas
(``contracts/catalog.py``) and one example per record type (``contracts/examples.py``) become
channels, operations and messages; nothing here lists a topic or a field by hand, except who
sends and who receives each topic (:data:`ROLES`). The committed ``docs/asyncapi.yaml`` is this
module's output (a test keeps them equal) and the official AsyncAPI parser validates it
(``scripts/asyncapi-validate``).

The operations are from chuteflow's point of view: the worker *receives* floor events and
routes and *sends* allocations, shadow decisions, audit records and dead letters; the policy
commands send routes, store records and aliases; the canary gate sends its checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from contracts.catalog import (
    MessageType,
    plain,
    published_messages,
    shared_schemas,
    topic_messages,
)
from contracts.examples import EXAMPLES
from contracts.sites import SITE_ID_PATTERN
from contracts.topics import (
    ALL_TOPICS,
    ALLOCATIONS,
    CHUTE_STATE,
    CONTROL,
    DEAD_LETTER,
    DECISIONS_AUDIT,
    INDUCTIONS,
    INTERVALS,
    POLICIES,
    SHADOW,
    SITES,
    SORTATION,
    TopicSpec,
    kafka_partition,
)

ASYNCAPI_VERSION = "3.0.0"
API_VERSION = "1.0.0"
"""Version of the interface described: the major matches the topics' and schemas' ``v1``."""
KAFKA_BINDING_VERSION = "0.5.0"
EXAMPLE_SITES = ("site-small", "site-large")
"""Sites whose partition the document lists, so an integrator can check a partitioner."""

PARTITIONER_RULE = (
    "Key: the record's site_id, UTF-8 bytes. Partition: (murmur2(key) & 0x7fffffff) % "
    "partitions, Kafka's Java default partitioner (also faust/aiokafka's). Producers written "
    "with librdkafka (confluent-kafka for Python, Go and .NET, librdkafka in C) must set "
    "partitioner=murmur2_random: librdkafka's default, consistent_random (CRC32), sends "
    "site-small to partition 4 instead of 1 of 6. Every topic keyed by site has the same "
    "partition count, so one site's records share one partition number on every topic and one "
    "worker of a consumer group owns the site; chuteflow's own producers use this partitioner."
)

FLOOR_DELIVERY = (
    "Ordering: Kafka orders records only within one partition of one topic, so a site's "
    "records of this topic arrive in the order they were produced; across the floor topics "
    "there is no order, and interval_closed.events_in_interval tells the worker how many "
    "records of each topic to wait for before it closes an interval. Delivery: produce "
    "at-least-once with an idempotent producer (enable.idempotence=true, acks=all). The "
    "worker's effect on a site's state is exactly-once: the site's snapshot carries the input "
    "offsets it includes and is flushed before offsets are committed, so after a crash the "
    "records already applied are skipped, and a re-sent copy of a record (a new offset) is "
    "dead-lettered as a duplicate instead of counted twice. A record the worker cannot use "
    "goes to the dead-letter topic with its reason, never into state."
)
DECISION_DELIVERY = (
    "Ordering: a site's decisions are in interval order on the site's partition. Delivery: "
    "at-least-once. After a worker crash or a partition hand-over, the decisions since the "
    "last committed offset are re-published with the same decision_id and byte-identical "
    "content (the state effect above is exactly-once, the publication is not): a consumer "
    "keeps the first record of each decision_id and drops repeats. One decision per site and "
    "interval of an open day, the first right after day_started."
)
AUDIT_DELIVERY = (
    "Delivery: at-least-once, like the allocations: a re-published decision repeats its audit "
    "record (same decision_id; a route acknowledgement repeats with the same site_id and "
    "revision). Open records: a new field may appear without a new version; consumers ignore "
    "fields they do not know."
)
DEAD_LETTER_DELIVERY = (
    "Delivery: at-least-once; a record re-read after a crash before its offset was committed "
    "may be dead-lettered twice with the same content (the same topic, partition and offset)."
)
CONTROL_DELIVERY = (
    "Written by chuteflow policy route|shadow|canary|promote|abort|rollback and the canary "
    "gate, each record to its site's partition. Compacted: the latest record of each site is "
    "kept for good. Delivery: at-least-once; the record is the site's whole route and its "
    "revision only grows, so a worker applies a revision once, at the site's next decision, "
    "and ignores a redelivered or older one."
)
POLICIES_DELIVERY = (
    "One partition, keyed sha256:<hex> of the ONNX bytes (store records) or alias:NAME@ALIAS "
    "(aliases), compacted: read it from the beginning. Registering the same bytes again writes "
    "nothing (a version never changes), so repeats are harmless; a reader checks the bytes "
    "against the version. An alias's latest record is the one in force; a tombstone (its key, "
    "a null value) removes it."
)
SITES_DELIVERY = (
    "One partition, keyed by site_id, compacted: read it from the beginning; the latest entry "
    "of a site is the site, a tombstone (its key, a null value) removes it. Delivery: "
    "at-least-once; an entry's revision only grows, so a worker applies a revision once and "
    "ignores a redelivered or older one. A worker applies a new site at once and a changed "
    "one from the site's next day_started."
)
HISTORY_DELIVERY = "Delivery: at-least-once, a history (not compacted)."


@dataclass(frozen=True)
class Role:
    """Who sends and who receives a topic, from chuteflow's side, and what to expect of it."""

    send: str | None
    """Which part of chuteflow produces the topic (None: the WCS does)."""
    receive: str | None
    """Which part of chuteflow consumes it (None: chuteflow does not)."""
    delivery: str


ROLES: dict[str, Role] = {
    INDUCTIONS.name: Role(None, "the worker", FLOOR_DELIVERY),
    SORTATION.name: Role(None, "the worker", FLOOR_DELIVERY),
    CHUTE_STATE.name: Role(None, "the worker", FLOOR_DELIVERY),
    INTERVALS.name: Role(None, "the worker", FLOOR_DELIVERY),
    ALLOCATIONS.name: Role("the worker", None, DECISION_DELIVERY),
    SHADOW.name: Role(
        "the worker", "chuteflow shadow report and the canary gate", DECISION_DELIVERY
    ),
    DECISIONS_AUDIT.name: Role("the worker", "chuteflow policy commands", AUDIT_DELIVERY),
    DEAD_LETTER.name: Role("the worker", None, DEAD_LETTER_DELIVERY),
    CONTROL.name: Role(
        "chuteflow policy commands and the canary gate", "the worker", CONTROL_DELIVERY
    ),
    POLICIES.name: Role(
        "chuteflow policy register and policy alias", "the worker", POLICIES_DELIVERY
    ),
    SITES.name: Role("chuteflow site add and site remove", "the worker", SITES_DELIVERY),
}
"""Roles of the topics known when this was written; a topic added later is sent by chuteflow
and read by no worker (:func:`role`)."""


def role(spec: TopicSpec) -> Role:
    return ROLES.get(spec.name, Role("chuteflow", None, HISTORY_DELIVERY))


def channel_id(spec: TopicSpec) -> str:
    """``chuteflow.allocations.v1`` -> ``allocations.v1``."""
    return spec.name.removeprefix("chuteflow.")


ALIAS_KEY_PATTERN = r"^alias:[A-Za-z0-9][A-Za-z0-9._-]{0,63}@[a-z][a-z0-9_-]{0,63}$"
"""The key of a ``policy_alias`` record (``stream/policy_alias.py`` writes ``alias:NAME@ALIAS``)."""


def _key(spec: TopicSpec, message: MessageType) -> dict[str, Any]:
    if message.name == "policy_alias":
        return {
            "type": "string",
            "pattern": ALIAS_KEY_PATTERN,
            "description": "alias:, the policy name, @ and the alias (alias:drmarl-large@champion"
            "); a tombstone with this key removes the alias.",
        }
    if message.name == "site_catalog_entry":
        return {
            "type": "string",
            "pattern": SITE_ID_PATTERN,
            "description": "The entry's site_id, UTF-8 bytes; a tombstone with this key removes "
            "the site.",
        }
    if spec.key == "site_id":
        text = "The record's site_id, UTF-8 bytes (see the channel's partitioning rule)."
        if spec is DEAD_LETTER:
            text = "The original record's key (its site_id), or unknown when it had none."
        return {"type": "string", "minLength": 1, "maxLength": 128, "description": text}
    return {
        "type": "string",
        "pattern": "^sha256:[0-9a-f]{64}$",
        "description": "sha256: and the hex sha256 of the policy's ONNX bytes (its version).",
    }


def _partitioning(spec: TopicSpec) -> dict[str, Any]:
    if spec.key != "site_id":
        return {
            "key": spec.key,
            "keyEncoding": "ascii",
            "rule": "One partition: every record is on partition 0. Store records are keyed "
            "sha256:<hex>, aliases alias:NAME@ALIAS.",
        }
    rule = PARTITIONER_RULE
    if spec.partitions == 1:
        rule = (
            "One partition: every record is on partition 0 whatever its key; the key (site_id, "
            "UTF-8) is what compaction keeps the latest entry of."
        )
    return {
        "key": "site_id",
        "keyEncoding": "utf-8",
        "partitioner": "murmur2",
        "librdkafkaPartitioner": "murmur2_random",
        "rule": rule,
        "examplePartitions": {
            site: kafka_partition(site.encode("utf-8"), spec.partitions) for site in EXAMPLE_SITES
        },
    }


def _channel(spec: TopicSpec, messages: list[MessageType]) -> dict[str, Any]:
    who = role(spec)
    configs = dict(spec.configs)
    cleanup = configs.get("cleanup.policy", "delete")
    key_text = (
        "Keyed by site_id (UTF-8), partitioned with Kafka's Java default murmur2 partitioner "
        "(librdkafka: partitioner=murmur2_random); the rule is in x-chuteflow-partitioning."
        if spec.key == "site_id"
        else "Keyed sha256:<hex> of the artifact (store records) or alias:NAME@ALIAS (aliases)."
    )
    return {
        "address": spec.name,
        "title": channel_id(spec),
        "description": "\n\n".join(
            [
                spec.summary,
                f"Partitions: {spec.partitions}. {key_text}",
                who.delivery,
                f"Cleanup policy: {cleanup}.",
            ]
        ),
        "messages": {m.name: {"$ref": f"#/components/messages/{m.name}"} for m in messages},
        "bindings": {
            "kafka": {
                "topic": spec.name,
                "partitions": spec.partitions,
                "topicConfiguration": {"cleanup.policy": [cleanup]},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
        "x-chuteflow-partitioning": _partitioning(spec),
    }


def _operations(spec: TopicSpec, messages: list[MessageType]) -> dict[str, Any]:
    ident = channel_id(spec)
    who = role(spec)
    out: dict[str, Any] = {}
    producer = who.send or "the WCS, keyed and partitioned as the channel says"
    for action, by in (("receive", who.receive), ("send", who.send)):
        if by is None:
            continue
        if action == "receive":
            text = f"Received by {by}; produced by {producer}."
        else:
            text = f"Sent by {by}, keyed and partitioned as the channel says"
            text += (
                "; the WCS consumes it and applies each decision_id once."
                if spec is ALLOCATIONS
                else "."
            )
        out[f"{action}.{ident}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{ident}"},
            "title": f"{action.capitalize()} {spec.name}",
            "summary": f"{'Received' if action == 'receive' else 'Sent'} by {by}.",
            "description": text,
            "messages": [{"$ref": f"#/channels/{ident}/messages/{m.name}"} for m in messages],
        }
    return out


def _message(message: MessageType, schema_name: str, keys: dict[str, Any]) -> dict[str, Any]:
    examples = EXAMPLES.get(message.name, [])
    return {
        "name": message.name,
        "title": message.name.replace("_", " ").capitalize(),
        "summary": message.summary,
        "description": plain(message.model.__doc__ or message.name)
        + f"\n\nJSON Schema: {message.schema_id} (chuteflow contracts export).",
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{schema_name}"},
        "bindings": {"kafka": {"key": keys, "bindingVersion": KAFKA_BINDING_VERSION}},
        "examples": [
            {
                "name": f"{message.name}_{i + 1}",
                "summary": _example_summary(message, i),
                "payload": e,
            }
            for i, e in enumerate(examples)
        ],
    }


def _example_summary(message: MessageType, index: int) -> str:
    if message.name == "policy_store_record":
        return "drmarl-small as registered (artifact cut to its first bytes)."
    if message.name == "policy_alias":
        return "drmarl-small@champion, keyed alias:drmarl-small@champion."
    if message.name == "day_started":
        return ("Without the optional day_type_group hint.", "With the hint.")[min(index, 1)]
    return f"A {message.name} record from a replayed small-site day."


INFO_DESCRIPTION = """chuteflow decides, every interval, which eject chutes each destination of \
a sortation site holds. A WCS (warehouse control system) integrates through Kafka only: it \
produces floor events (inductions, sortation, chute state and the site's clock) and consumes \
one allocation per site and interval.

Every record is UTF-8 JSON whose event_type (events) names its schema; events forbid unknown \
fields (a new field means a new schema_version on a new topic). Topic names carry the major \
version (chuteflow.<family>.v1).

Partitioning: {rule}

What is exactly-once and what is at-least-once: the worker's effect on a site's state is \
exactly-once per input record (the site's snapshot carries the offsets it includes; a restarted \
worker skips what it applied). Its outputs are at-least-once: after a crash or hand-over an \
allocation may be re-published with the same decision_id and the same content, so consumers \
keep the first record of each decision_id. Input plausibility is part of the contract: a record \
that fails its schema or the limits (at most 64 KiB; event times within the site's day and \
within 300 s of the open interval; no duplicates) is dead-lettered with its reason, never \
applied.

day_started.day_type_group is an optional hint; the worker plans each day from its own \
forecast, and an absent or unknown hint never drops a day."""


def build_document() -> dict[str, Any]:
    """The AsyncAPI document as plain data (YAML- and JSON-ready)."""
    messages = published_messages()
    names, schemas = shared_schemas(messages, "#/components/schemas/{model}")
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    keys: dict[str, dict[str, Any]] = {}
    for spec in ALL_TOPICS:
        on_topic = topic_messages(spec)
        channels[channel_id(spec)] = _channel(spec, on_topic)
        operations.update(_operations(spec, on_topic))
        for message in on_topic:
            keys.setdefault(message.name, _key(spec, message))
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:chuteflow:kafka",
        "info": {
            "title": "chuteflow Kafka interface",
            "version": API_VERSION,
            "description": INFO_DESCRIPTION.format(rule=PARTITIONER_RULE),
            "license": {"name": "Proprietary"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "A local broker (chuteflow kafka up): PLAINTEXT, no "
                "authentication. For development and tests only.",
            },
            "production": {
                "host": "{bootstrap}",
                "protocol": "kafka-secure",
                "description": "A production cluster: SASL/SCRAM-SHA-512 over TLS "
                "(security.protocol=SASL_SSL, sasl.mechanism=SCRAM-SHA-512, the cluster's CA "
                "in ssl.ca.location). chuteflow takes these as --kafka-config FILE or KAFKA_* "
                "environment variables.",
                "variables": {
                    "bootstrap": {
                        "default": "kafka.example.internal:9096",
                        "description": "host:port of the cluster's SASL_SSL listener.",
                    }
                },
                "security": [{"$ref": "#/components/securitySchemes/scramSha512"}],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": {m.name: _message(m, names[m.name], keys[m.name]) for m in messages},
            "schemas": schemas,
            "securitySchemes": {
                "scramSha512": {
                    "type": "scramSha512",
                    "description": "SASL/SCRAM-SHA-512 over TLS: a user name and password per "
                    "client (sasl.username, sasl.password), the broker's certificate checked "
                    "against the cluster CA.",
                }
            },
        },
    }


def render() -> str:
    """The document as YAML, deterministic (the committed ``docs/asyncapi.yaml``)."""
    header = (
        "# Generated by `chuteflow contracts asyncapi --out docs/asyncapi.yaml` from contracts/;\n"
        "# do not edit by hand (tests/contracts/test_asyncapi.py keeps it equal to the output).\n"
    )
    body = yaml.dump(
        build_document(), Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True
    )
    return header + body


class _Dumper(yaml.SafeDumper):
    """Multi-paragraph descriptions as literal blocks, readable in the committed file; no
    anchors (a list used twice is written twice)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


__all__ = ["PARTITIONER_RULE", "ROLES", "build_document", "channel_id", "render"]
