"""Every message type on every topic, found from the contracts themselves, with its JSON Schema.

The JSON Schemas (``chuteflow contracts export``) and the AsyncAPI document
(``contracts/asyncapi.py``) are generated from here, so a topic or record type added to the
contracts shows up in both without a hand-kept list:

- a topic's ``event_types`` name models that carry that ``event_type`` default: every
  ``Envelope`` subclass in ``contracts.events`` and ``contracts.control`` is found by its
  discriminator, a new one included;
- a topic's ``records`` name the other record types (``contracts.records.RECORD_TYPES`` and
  the site catalog's, ``contracts.sites.SITE_RECORD_TYPES``).

Descriptions come from field descriptions and model docstrings. Docstrings are written for
Python readers; :func:`plain` turns their reST markup into the plain text a JSON Schema reader
sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from contracts import control, events
from contracts.records import RECORD_TYPES
from contracts.sites import SITE_RECORD_TYPES
from contracts.topics import ALL_TOPICS, TopicSpec

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_PREFIX = "urn:chuteflow:schema:"
"""``$id`` of a message's schema: this, then ``<name>:v<version>``."""


@dataclass(frozen=True)
class MessageType:
    """One record type: its name (the ``event_type`` of an event), model and schema version."""

    name: str
    model: type[BaseModel]
    version: int

    @property
    def schema_id(self) -> str:
        return f"{ID_PREFIX}{self.name}:v{self.version}"

    @property
    def file_name(self) -> str:
        return f"{self.name}.v{self.version}.schema.json"

    @property
    def summary(self) -> str:
        """The model docstring's first sentence, plain."""
        doc = plain(self.model.__doc__ or self.name)
        first = doc.split("\n\n")[0]
        return first.split(". ")[0].rstrip(".") + "."


def _event_models() -> dict[str, MessageType]:
    """Every ``Envelope`` subclass of the contract modules, by its ``event_type`` default."""
    found: dict[str, MessageType] = {}
    for module in (events, control):
        for value in vars(module).values():
            if not (isinstance(value, type) and issubclass(value, events.Envelope)):
                continue
            fields = value.model_fields
            if "event_type" not in fields or "schema_version" not in fields:
                continue
            name, version = fields["event_type"].default, fields["schema_version"].default
            if isinstance(name, str) and isinstance(version, int):
                found[name] = MessageType(name, value, version)
    return found


def _message_types() -> dict[str, MessageType]:
    found = _event_models()
    for name, (model, version) in (RECORD_TYPES | SITE_RECORD_TYPES).items():
        found[name] = MessageType(name, model, version)
    return found


MESSAGE_TYPES: dict[str, MessageType] = _message_types()
"""Every record type any topic carries, by name."""


def topic_messages(spec: TopicSpec) -> list[MessageType]:
    """The record types on ``spec``: its events, then its other records (KeyError if one is
    not known: a topic must not name a type without a model)."""
    return [MESSAGE_TYPES[name] for name in (*spec.event_types, *spec.records)]


def published_messages() -> list[MessageType]:
    """Every record type on some topic of :data:`~contracts.topics.ALL_TOPICS`, once each, in
    topic order."""
    seen: dict[str, MessageType] = {}
    for spec in ALL_TOPICS:
        for message in topic_messages(spec):
            seen.setdefault(message.name, message)
    return list(seen.values())


_ROLE = re.compile(r":[a-z]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``([^`]*)``")


def plain(text: str) -> str:
    """Docstring text as plain text: reST roles and literals unwrapped (``:func:`~a.b``` ->
    ``b``), lines of a paragraph joined, paragraphs kept apart by one blank line."""

    def role(match: re.Match[str]) -> str:
        target = match.group(1).strip()
        return target.rsplit(".", 1)[-1] if match.group(0).find("~") >= 0 else target

    text = _ROLE.sub(role, text)
    text = _LITERAL.sub(r"\1", text)
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip())]
    return "\n\n".join(p for p in paragraphs if p)


def _clean(node: Any) -> Any:
    """Plain descriptions everywhere in a schema, and no pydantic ``title`` on fields (the
    property name says it; titles stay on models)."""
    if isinstance(node, list):
        return [_clean(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "description" and isinstance(value, str):
            out[key] = plain(value)
        elif key == "properties" and isinstance(value, dict):
            out[key] = {
                name: _clean({k: v for k, v in prop.items() if k != "title"})
                for name, prop in value.items()
            }
        else:
            out[key] = _clean(value)
    return out


def json_schema(message: MessageType) -> dict[str, Any]:
    """The message's standalone JSON Schema (draft 2020-12, ``$id``, plain descriptions)."""
    schema = _clean(message.model.model_json_schema(mode="validation"))
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": message.schema_id, **schema}


def shared_schemas(
    messages: list[MessageType], ref_template: str
) -> tuple[dict[str, str], dict[str, Any]]:
    """Schemas of ``messages`` and every model they use, in one namespace whose references
    follow ``ref_template`` (AsyncAPI's ``#/components/schemas/{model}``): (message name ->
    schema name, schema name -> schema)."""
    keyed, defs = models_json_schema(
        [(m.model, "validation") for m in messages], ref_template=ref_template
    )
    names: dict[str, str] = {}
    for message in messages:
        ref = keyed[(message.model, "validation")]["$ref"]
        names[message.name] = ref.rsplit("/", 1)[-1]
    return names, _clean(defs.get("$defs", {}))


__all__ = [
    "ID_PREFIX",
    "JSON_SCHEMA_DIALECT",
    "MESSAGE_TYPES",
    "MessageType",
    "json_schema",
    "plain",
    "published_messages",
    "shared_schemas",
    "topic_messages",
]
