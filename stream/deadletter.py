"""Dead-letter records: what the worker could not use, with the reason and the original bytes.

A record that fails to decode or validate, names an unknown site, destination or chute, or
arrives when it cannot be used (a floor event before the site's day started) is never
dropped silently and never crashes the worker: it goes to ``DEAD_LETTER`` as one JSON object
with the original value base64-encoded (it may not be UTF-8 at all), so an operator can see
why and re-publish a fixed record.

The reason starts with its kind (``decode``, ``duplicate``, ``implausible_time`` ...: the text
before the first colon), which metrics count by. A value longer than
``InputLimits.dead_letter_value_bytes`` is kept only up to that length, with its full size and
sha256: base64 grows a value by a third, and a dead letter of a near-1 MB record would exceed
the producer's message limit and crash the worker on every restart.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

from contracts.topics import DEAD_LETTER

UNKNOWN_KEY = b"unknown"
"""Key of a dead-letter record whose original had no key."""
DEFAULT_VALUE_BYTES = 16 * 1024
"""Original bytes kept by default (``contracts.limits.InputLimits.dead_letter_value_bytes``)."""
KEY_BYTES = 1024
"""Original key bytes kept; a hostile key is truncated like a value."""


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
    max_value_bytes: int = DEFAULT_VALUE_BYTES,
) -> OutRecord:
    """The dead-letter record for one rejected input record, keyed like the original."""
    kept = value[:max_value_bytes]
    key = None if key is None else key[:KEY_BYTES]
    body = {
        "reason": reason[:1000],
        "kind": reason_kind(reason),
        "topic": topic[:256],
        "partition": partition,
        "offset": offset,
        "key_base64": None if key is None else base64.b64encode(key).decode("ascii"),
        "value_base64": base64.b64encode(kept).decode("ascii"),
        "value_bytes": len(value),
        "truncated": len(kept) < len(value),
        "value_sha256": hashlib.sha256(value).hexdigest(),
    }
    return OutRecord(
        DEAD_LETTER.name, key or UNKNOWN_KEY, json.dumps(body, sort_keys=True).encode("utf-8")
    )


def reason_kind(reason: str) -> str:
    """The kind of a dead-letter reason: the word before its first colon, else ``other``."""
    head, sep, _ = reason.partition(":")
    return head if sep and head.isidentifier() else "other"


def original_value(record_value: bytes) -> tuple[str, bytes]:
    """(reason, original bytes) of a dead-letter record's value; for tools and tests."""
    body = json.loads(record_value)
    return str(body["reason"]), base64.b64decode(body["value_base64"])
