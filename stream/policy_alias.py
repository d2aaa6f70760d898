"""Aliases of policy-store versions: ``NAME@latest`` and operator-set ``NAME@ALIAS``.

An alias names one version of a policy, as MLflow's ``models:/name@alias`` does: an operator
says ``drmarl-large@champion`` instead of a hash, and moves ``@champion`` when another version
wins. ``NAME@latest`` is built in: the version of NAME registered last.

Aliases live on the policy store's own topic (``contracts.topics.POLICIES``), not on the
control topic: an alias is a fact about the registry (which version of a name), not about a
site, and the store is one compacted partition read from its beginning anyway, so one read
gives both the versions and the aliases that point at them. Each alias is one record keyed
``alias:NAME@ALIAS`` (compaction keeps the last one per key; a tombstone removes it) whose
value is JSON::

    {"format": "chuteflow.policy-alias/1", "name", "alias", "version" (hex sha256), "set_at"}

:func:`~stream.policy_store.parse_record` ignores these records, so store readers that know
nothing of aliases are unaffected.

An alias is resolved when a command reads it: a route carries the full hash it resolved to,
so moving ``@champion`` later changes nothing that already serves.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contracts.topics import POLICIES
from decision.artifacts import HASH_PREFIX, MIN_PREFIX_CHARS, check_name
from stream.clients import KafkaClientConfig, as_client, produce_all
from stream.policy_store import (
    PolicyStoreError,
    StoredPolicy,
    parse_record,
    resolve,
)
from stream.topic_reader import TopicReadError, read_to_end

ALIAS_FORMAT = "chuteflow.policy-alias/1"
ALIAS_KEY_PREFIX = "alias:"
LATEST = "latest"
"""The built-in alias: the version of a name registered last."""
ALIAS_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class Alias:
    """``name@alias`` -> ``version`` (hex sha256), set at ``set_at`` (ISO-8601)."""

    name: str
    alias: str
    version: str
    set_at: str

    @property
    def key(self) -> str:
        return f"{ALIAS_KEY_PREFIX}{self.name}@{self.alias}"


@dataclass(frozen=True)
class Registry:
    """The store as one read gives it: versions by hex sha256 and aliases by ``NAME@ALIAS``."""

    records: dict[str, StoredPolicy]
    aliases: dict[str, Alias]


def check_alias(alias: str) -> str:
    """An alias: lower-case letters, digits, ``_``, ``-``, starting with a letter; not
    ``latest`` (built in) and not something that reads as a hash prefix."""
    if not ALIAS_PATTERN.fullmatch(alias):
        raise PolicyStoreError(
            f"alias {alias!r}: use lower-case letters, digits, '_' or '-', starting with a letter"
        )
    if alias == LATEST:
        raise PolicyStoreError("alias 'latest' is built in (the version registered last)")
    if _HEX.fullmatch(alias) and len(alias) >= MIN_PREFIX_CHARS:
        raise PolicyStoreError(f"alias {alias!r} reads as a version prefix; pick another")
    return alias


def is_alias_ref(ref: str) -> bool:
    """Whether ``NAME@X`` names an alias (``latest`` or an operator's) rather than a version."""
    if ref.startswith(HASH_PREFIX):
        return False
    _, at, tail = ref.rpartition("@")
    return bool(at) and bool(ALIAS_PATTERN.fullmatch(tail)) and not _is_version(tail)


def _is_version(text: str) -> bool:
    return bool(_HEX.fullmatch(text.lower())) and len(text) >= MIN_PREFIX_CHARS


def parse_alias(key: bytes | None, value: bytes | None) -> tuple[str, Alias | None] | None:
    """``(key, alias)`` of an alias record (``alias`` None for a tombstone), or None when the
    record is not an alias record."""
    if key is None:
        return None
    try:
        text_key = key.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text_key.startswith(ALIAS_KEY_PREFIX):
        return None
    if value is None:
        return text_key, None
    try:
        payload = json.loads(value)
        if payload.get("format") != ALIAS_FORMAT:
            return None
        alias = Alias(
            str(payload["name"]),
            str(payload["alias"]),
            str(payload["version"]),
            str(payload["set_at"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return (text_key, alias) if alias.key == text_key else None


def read_registry(
    bootstrap: str | KafkaClientConfig, *, timeout_s: float = 30.0, ensure: bool = True
) -> Registry:
    """Every version and alias of the store, from one read of its topic."""
    client = as_client(bootstrap)
    if ensure:
        from stream.admin import ensure_topics

        ensure_topics(client, [POLICIES], timeout=timeout_s)
    try:
        stored = read_to_end(client, [POLICIES.name], timeout_s=timeout_s)
    except TopicReadError as error:
        raise PolicyStoreError(f"reading the store at {client.bootstrap}: {error}") from None
    records: dict[str, StoredPolicy] = {}
    aliases: dict[str, Alias] = {}
    for message in stored:
        key = message.key
        record = parse_record(key, message.value)
        if record is not None:
            records[record.sha256] = record
            continue
        parsed = parse_alias(key, message.value)
        if parsed is not None:
            alias_key, alias = parsed
            if alias is None:
                aliases.pop(alias_key, None)
            else:
                aliases[alias_key] = alias
        elif message.value is None and key and key.startswith(HASH_PREFIX.encode()):
            records.pop(key[len(HASH_PREFIX) :].decode("ascii", "replace"), None)
    return Registry(records, aliases)


def resolve_ref(registry: Registry, ref: str) -> StoredPolicy:
    """The record ``ref`` names: ``NAME@latest``, ``NAME@ALIAS``, ``NAME@VERSION`` or
    ``sha256:HEX`` (:class:`~stream.policy_store.PolicyStoreError` when it names none)."""
    if not is_alias_ref(ref):
        return resolve(registry.records, ref)
    name, _, alias = ref.rpartition("@")
    check_name(name)
    versions = [r for r in registry.records.values() if r.name == name]
    if not versions:
        raise PolicyStoreError(f"policy {ref}: no policy named {name} in the store")
    if alias == LATEST:
        return max(versions, key=lambda r: (str(r.metadata.get("registered_at", "")), r.sha256))
    found = registry.aliases.get(f"{ALIAS_KEY_PREFIX}{name}@{alias}")
    if found is None:
        known = sorted(a.alias for a in registry.aliases.values() if a.name == name)
        listed = ", ".join(["latest", *known])
        raise PolicyStoreError(f"policy {ref}: {name} has no alias {alias!r} (has: {listed})")
    record = registry.records.get(found.version)
    if record is None:
        raise PolicyStoreError(
            f"policy {ref}: the alias points at {found.version[:12]}, which is not in the store"
        )
    return record


def alias_record(name: str, alias: str, version: str, when: datetime | None = None) -> Alias:
    check_name(name)
    check_alias(alias)
    stamp = (when or datetime.now(UTC)).isoformat(timespec="seconds")
    return Alias(name, alias, version, stamp)


def set_alias(
    bootstrap: str | KafkaClientConfig, ref: str, alias: str, *, timeout_s: float = 30.0
) -> Alias:
    """Point ``NAME@ALIAS`` at the version ``ref`` names; the alias takes the version's
    registered name."""
    client = as_client(bootstrap)
    check_alias(alias)
    record = resolve_ref(read_registry(client, timeout_s=timeout_s), ref)
    made = alias_record(record.name, alias, record.sha256)
    value: dict[str, Any] = {
        "format": ALIAS_FORMAT,
        "name": made.name,
        "alias": made.alias,
        "version": made.version,
        "set_at": made.set_at,
    }
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")
    failure = produce_all(
        client, [(POLICIES.name, made.key.encode("ascii"), encoded, None)], timeout_s=timeout_s
    )
    if failure is not None:
        raise PolicyStoreError(f"writing alias {made.key} to {POLICIES.name}: {failure}")
    return made


def remove_alias(
    bootstrap: str | KafkaClientConfig, name: str, alias: str, *, timeout_s: float = 30.0
) -> bool:
    """Remove ``NAME@ALIAS`` (a tombstone); False when there was no such alias."""
    client = as_client(bootstrap)
    key = f"{ALIAS_KEY_PREFIX}{check_name(name)}@{check_alias(alias)}"
    if key not in read_registry(client, timeout_s=timeout_s).aliases:
        return False
    failure = produce_all(client, [(POLICIES.name, key.encode("ascii"), None, None)])  # type: ignore[list-item]
    if failure is not None:
        raise PolicyStoreError(f"removing alias {key} from {POLICIES.name}: {failure}")
    return True


__all__ = [
    "ALIAS_FORMAT",
    "LATEST",
    "Alias",
    "Registry",
    "alias_record",
    "check_alias",
    "is_alias_ref",
    "parse_alias",
    "read_registry",
    "remove_alias",
    "resolve_ref",
    "set_alias",
]
