"""Dead-letter records: what the worker could not use, with the reason and the original bytes.

A record that fails to decode or validate, names an unknown site, destination or chute, or
arrives when it cannot be used (a floor event before the site's day started) is never
dropped silently and never crashes the worker: it goes to ``DEAD_LETTER`` as one JSON object
with the original value base64-encoded (it may not be UTF-8 at all), so an operator can see
why and re-publish a fixed record.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from contracts.topics import DEAD_LETTER

UNKNOWN_KEY = b"unknown"
"""Key of a dead-letter record whose original had no key."""


@dataclass(frozen=True)
class OutRecord:
    """A record the worker wants published (the faust agent sends it as it is)."""

    topic: str
    key: bytes
    value: bytes


def dead_letter(
    reason: str,
    *,
    topic: str,
    key: bytes | None,
    value: bytes,
    partition: int = -1,
    offset: int = -1,
) -> OutRecord:
    """The dead-letter record for one rejected input record, keyed like the original."""
    body = {
        "reason": reason,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key_base64": None if key is None else base64.b64encode(key).decode("ascii"),
        "value_base64": base64.b64encode(value).decode("ascii"),
    }
    return OutRecord(
        DEAD_LETTER.name, key or UNKNOWN_KEY, json.dumps(body, sort_keys=True).encode("utf-8")
    )


def original_value(record_value: bytes) -> tuple[str, bytes]:
    """(reason, original bytes) of a dead-letter record's value; for tools and tests."""
    body = json.loads(record_value)
    return str(body["reason"]), base64.b64decode(body["value_base64"])
