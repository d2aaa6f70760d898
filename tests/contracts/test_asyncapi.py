"""The AsyncAPI document: generated from the contracts, committed without drift, valid for the
official AsyncAPI parser, and complete (every topic a channel, every message with a schema and
an example that validates against it)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from contracts.asyncapi import channel_id, render
from contracts.catalog import MESSAGE_TYPES, json_schema, topic_messages
from contracts.examples import EXAMPLES
from contracts.topics import ALL_TOPICS, kafka_partition
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent.parent
COMMITTED = ROOT / "docs" / "asyncapi.yaml"
VALIDATE = ROOT / "scripts" / "asyncapi-validate"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMMITTED.read_text())
    return loaded


def test_the_committed_document_is_the_generators_output() -> None:
    assert COMMITTED.read_text() == render(), (
        "docs/asyncapi.yaml is stale: run chuteflow contracts asyncapi --out docs/asyncapi.yaml"
    )


def test_every_topic_is_a_channel_with_its_messages_partitions_and_rule(
    document: dict[str, Any],
) -> None:
    channels = document["channels"]
    assert len(channels) == len(ALL_TOPICS)
    for spec in ALL_TOPICS:
        channel = channels[channel_id(spec)]
        assert channel["address"] == spec.name
        assert channel["bindings"]["kafka"]["partitions"] == spec.partitions
        assert set(channel["messages"]) == {m.name for m in topic_messages(spec)}
        rule = channel["x-chuteflow-partitioning"]
        if spec.key == "site_id":
            assert rule["librdkafkaPartitioner"] == "murmur2_random"
            for site, partition in rule["examplePartitions"].items():
                assert partition == kafka_partition(site.encode(), spec.partitions)
    operations = document["operations"].values()
    sent = {op["channel"]["$ref"].rsplit("/", 1)[-1] for op in operations if op["action"] == "send"}
    received = {
        op["channel"]["$ref"].rsplit("/", 1)[-1] for op in operations if op["action"] == "receive"
    }
    assert {"inductions.v1", "intervals.v1", "control.v1"} <= received
    assert {"allocations.v1", "dead-letter.v1", "shadow.v1"} <= sent
    assert "scramSha512" in document["components"]["securitySchemes"]
    assert document["servers"]["production"]["protocol"] == "kafka-secure"


def test_every_message_has_an_example_valid_for_its_schema_and_model(
    document: dict[str, Any],
) -> None:
    registry: Registry[Any] = Registry().with_resource(
        "urn:doc", Resource.from_contents(document, default_specification=DRAFT7)
    )
    messages = document["components"]["messages"]
    assert set(messages) == set(MESSAGE_TYPES)
    for name, message in messages.items():
        assert message["examples"], f"{name} has no example"
        schema = {"$ref": f"urn:doc#/components/messages/{name}/payload"}
        in_document = Draft7Validator(schema, registry=registry)
        standalone = Draft7Validator(json_schema(MESSAGE_TYPES[name]))
        for example in message["examples"]:
            payload = example["payload"]
            in_document.validate(payload)
            standalone.validate(payload)
            MESSAGE_TYPES[name].model.model_validate_json(json.dumps(payload))
        assert not in_document.is_valid({**message["examples"][0]["payload"], "x": [1]}) or (
            name in {"decision_audit", "route_received"}  # open records
        )
    assert set(EXAMPLES) == set(MESSAGE_TYPES)


def test_the_official_parser_accepts_the_document() -> None:
    require_tool("npm")
    done = subprocess.run(
        [str(VALIDATE), str(COMMITTED)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid AsyncAPI 3.0.0" in done.stdout


def test_the_official_parser_rejects_a_broken_document(tmp_path: Path) -> None:
    require_tool("npm")
    broken = yaml.safe_load(COMMITTED.read_text())
    first = next(iter(broken["operations"].values()))
    first["channel"] = {"$ref": "#/channels/no-such-channel"}
    broken["operations"]["bad"] = {"action": "publish"}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    done = subprocess.run([str(VALIDATE), str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error:" in done.stdout and "INVALID" in done.stdout


def test_every_description_in_the_document_is_plain_text(document: dict[str, Any]) -> None:
    from tests.contracts.test_schemas import MARKUP, _descriptions

    texts = list(_descriptions(document))
    assert len(texts) > 200
    marked = [text[:80] for text in texts if MARKUP.search(text)]
    assert not marked, marked
