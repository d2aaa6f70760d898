"""JSON Schemas: one per message type on every topic, each a 2020-12 schema with an id and a
plain-text description on every field, and each valid for what the contracts accept."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from contracts.catalog import (
    JSON_SCHEMA_DIALECT,
    MESSAGE_TYPES,
    json_schema,
    published_messages,
    topic_messages,
)
from contracts.events import EVENT_TYPES
from contracts.schema_export import export_schemas
from contracts.topics import ALL_TOPICS

MARKUP = re.compile(r"`|:[a-z]+:`|\.\. [a-z]+::")


def _properties(schema: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (path, property schema) of every object schema, nested and in $defs."""
    if isinstance(schema, dict):
        for name, prop in (schema.get("properties") or {}).items():
            yield f"{where}.{name}", prop
        for key, value in schema.items():
            yield from _properties(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for i, item in enumerate(schema):
            yield from _properties(item, f"{where}[{i}]")


def _descriptions(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "description" and isinstance(value, str):
                yield value
            else:
                yield from _descriptions(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _descriptions(item)


def test_every_topic_has_a_summary_and_at_least_one_message_type() -> None:
    for spec in ALL_TOPICS:
        assert spec.summary.strip(), f"{spec.name} has no summary"
        assert topic_messages(spec), f"{spec.name} declares no message type"


def test_every_event_model_is_published_on_some_topic() -> None:
    published = {m.name for m in published_messages()}
    assert set(EVENT_TYPES) <= published
    assert set(MESSAGE_TYPES) == published, "a record type that no topic carries"


@pytest.mark.parametrize("name", sorted(MESSAGE_TYPES))
def test_schema_is_draft_2020_12_with_an_id_and_described_fields(name: str) -> None:
    schema = json_schema(MESSAGE_TYPES[name])
    assert schema["$schema"] == JSON_SCHEMA_DIALECT
    assert schema["$id"] == f"urn:chuteflow:schema:{name}:v{MESSAGE_TYPES[name].version}"
    Draft202012Validator.check_schema(schema)
    fields = list(_properties(schema))
    assert fields
    for path, prop in fields:
        text = prop.get("description", "")
        assert text.strip(), f"{name}{path} has no description"
    for text in _descriptions(schema):
        assert not MARKUP.search(text), f"{name}: markup in {text!r}"


def test_export_writes_one_schema_per_message_type_of_every_topic(tmp_path: Path) -> None:
    paths = export_schemas(tmp_path)
    assert len(paths) == len(published_messages()) >= 13
    names = {path.name for path in paths}
    for needed in ("allocation_decided", "policy_route", "dead_letter", "decision_audit"):
        assert f"{needed}.v1.schema.json" in names
    fields = 0
    for path in paths:
        schema = json.loads(path.read_text())
        assert schema["$schema"] == JSON_SCHEMA_DIALECT
        fields += sum(1 for _ in _properties(schema))
    assert fields > 150


FIXTURES = Path(__file__).parent.parent / "fixtures" / "contracts"


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("v*/*.json")), ids=lambda p: p.stem)
def test_golden_fixtures_validate_against_their_exported_schema(path: Path) -> None:
    schema = json_schema(MESSAGE_TYPES[path.stem])
    Draft202012Validator(schema).validate(json.loads(path.read_text()))


def test_a_schema_refuses_what_the_model_refuses() -> None:
    schema = json_schema(MESSAGE_TYPES["allocation_decided"])
    good = json.loads((FIXTURES / "v1" / "allocation_decided.json").read_text())
    validator = Draft202012Validator(schema)
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "surprise": 1})
    assert not validator.is_valid({**good, "solver_status": "guessed"})
    assert not validator.is_valid({k: v for k, v in good.items() if k != "decision_id"})
