"""The policy store: immutable, content-addressed ONNX policies on a compacted Kafka topic.

A registered policy's version is the sha256 of its ONNX bytes. The store is the topic
``contracts.topics.POLICIES`` (one partition, ``cleanup.policy=compact``): one record per
version, keyed ``sha256:<hex>``, whose value is JSON::

    {"format": "chuteflow.policy/1",
     "metadata": {"name", "version" (hex sha256), "size", "registered_at", "features",
                  "scenarios", "guardrail_versions", "settings", "report", "onnx_metadata"},
     "artifact": "<base64 of the ONNX bytes>"}

Compaction keeps the last record per key for good, so the store is read from the beginning
(:func:`read_store`). Registering the same bytes again is idempotent: the existing record is
returned and nothing is written (a version never changes once registered).

Loading (:func:`fetch_policy`) takes ``NAME@VERSION`` (VERSION a full sha256 or a unique
prefix of at least 8 hex digits) or ``sha256:HEX``. A full hash is served from the local cache
(:func:`cache_dir`: ``$CHUTEFLOW_POLICY_CACHE`` or ``~/.cache/chuteflow/policies``, files
``<hex>.onnx`` and ``<hex>.json``) when it is there, else from the store, which also resolves
prefixes; the bytes are checked against the hash either way, and a cached file that does not
match is refused, never served or silently replaced.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts.codec import decode_route
from contracts.control import PolicyRef
from contracts.topics import POLICIES
from decision.artifacts import (
    HASH_PREFIX,
    ArtifactCheck,
    ArtifactError,
    PolicyArtifact,
    check_hex,
    check_name,
    sha256_hex,
    version_key,
)
from floor.errors import ChuteflowError
from stream.clients import KafkaClientConfig, as_client, produce_all
from stream.topic_reader import TopicReadError, read_to_end

RECORD_FORMAT = "chuteflow.policy/1"
CACHE_ENV = "CHUTEFLOW_POLICY_CACHE"
DEFAULT_CACHE = Path("~/.cache/chuteflow/policies")
MAX_ATTACHMENT_BYTES = 64 * 1024
"""Largest training settings file or evaluation report stored with a policy."""
MAX_RECORD_BYTES = 1_900_000
"""Producer limit on one (uncompressed) record; the record is gzip-compressed, and the broker
checks the compressed batch against its own limit (1 MB by default)."""


class PolicyStoreError(ChuteflowError):
    """The store cannot give or take a policy (not found, ambiguous, hash mismatch, Kafka
    refused the record); one line, exit code 2."""


@dataclass(frozen=True)
class StoredPolicy:
    """One record of the store: its metadata and the base64 artifact (decoded on demand)."""

    metadata: dict[str, Any]
    artifact_b64: str

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def sha256(self) -> str:
        return str(self.metadata["version"])

    def artifact(self) -> PolicyArtifact:
        """The ONNX bytes, checked against the record's version (:class:`PolicyStoreError`
        when they do not match)."""
        try:
            data = base64.b64decode(self.artifact_b64, validate=True)
        except (binascii.Error, ValueError):
            raise PolicyStoreError(
                f"store record {version_key(self.sha256)}: the artifact is not valid base64"
            ) from None
        try:
            return PolicyArtifact(
                self.name, self.sha256, data, tuple(self.metadata.get("scenarios", ()))
            )
        except ArtifactError as error:
            raise PolicyStoreError(f"store record {version_key(self.sha256)}: {error}") from None


# --- pure parts: attachments, records, references ---------------------------------------


def cache_dir(explicit: str | Path | None = None) -> Path:
    """Where fetched artifacts are kept: ``explicit``, else ``$CHUTEFLOW_POLICY_CACHE``, else
    ``~/.cache/chuteflow/policies``."""
    chosen = explicit or os.environ.get(CACHE_ENV) or DEFAULT_CACHE
    return Path(chosen).expanduser()


def read_settings(path: str | Path) -> Any:
    """A training settings JSON file, parsed (at most :data:`MAX_ATTACHMENT_BYTES`)."""
    text = _read_attachment(path, "--settings")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise PolicyStoreError(f"--settings {path}: not JSON ({error})") from None


def read_report(path: str | Path) -> dict[str, Any]:
    """An evaluation report: ``.json`` parsed, anything else (Markdown) as text."""
    path = Path(path)
    text = _read_attachment(path, "--report")
    if path.suffix.lower() == ".json":
        try:
            return {"file": path.name, "format": "json", "content": json.loads(text)}
        except json.JSONDecodeError as error:
            raise PolicyStoreError(f"--report {path}: not JSON ({error})") from None
    return {"file": path.name, "format": "markdown", "content": text}


def _read_attachment(path: str | Path, flag: str) -> str:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PolicyStoreError(f"{flag} {path}: cannot read it ({error.strerror})") from None
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise PolicyStoreError(
            f"{flag} {path}: {len(data)} bytes; at most {MAX_ATTACHMENT_BYTES} are stored"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyStoreError(f"{flag} {path}: not UTF-8 text") from None


def make_record(
    name: str,
    check: ArtifactCheck,
    data: bytes,
    *,
    settings: Any = None,
    report: dict[str, Any] | None = None,
    registered_at: datetime | None = None,
) -> tuple[bytes, bytes]:
    """The store record (key, value) of ``data`` as :func:`~decision.artifacts.inspect_artifact`
    checked it."""
    check_name(name)
    if sha256_hex(data) != check.sha256:
        raise PolicyStoreError("the artifact changed after it was checked")
    when = registered_at or datetime.now(UTC)
    metadata = {
        "name": name,
        "version": check.sha256,
        "size": check.size,
        "registered_at": when.isoformat(timespec="seconds"),
        "features": list(check.features),
        "scenarios": list(check.scenarios),
        "guardrail_versions": dict(check.guardrail_versions),
        "settings": settings,
        "report": report,
        "onnx_metadata": dict(check.onnx_metadata),
    }
    value = {
        "format": RECORD_FORMAT,
        "metadata": metadata,
        "artifact": base64.b64encode(data).decode("ascii"),
    }
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(encoded) > MAX_RECORD_BYTES:
        raise PolicyStoreError(
            f"store record of {name} is {len(encoded)} bytes; at most {MAX_RECORD_BYTES}"
        )
    return version_key(check.sha256).encode("ascii"), encoded


def parse_record(key: bytes | None, value: bytes | None) -> StoredPolicy | None:
    """A record of the store, or None for a tombstone or a record that is not one (a record
    whose key is not its version's is not one either)."""
    if value is None or key is None:
        return None
    try:
        payload = json.loads(value)
        metadata = payload["metadata"]
        artifact = payload["artifact"]
        if payload.get("format") != RECORD_FORMAT or not isinstance(artifact, str):
            return None
        if key.decode("ascii") != version_key(str(metadata["version"])):
            return None
        str(metadata["name"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    return StoredPolicy(metadata, artifact)


def is_store_ref(ref: str) -> bool:
    """Whether ``--policy ref`` names a store version (``NAME@VERSION``, ``sha256:HEX``)
    rather than a built-in policy or an ``.onnx`` file."""
    if ref.lower().endswith(".onnx"):
        return False
    return ref.startswith(HASH_PREFIX) or "@" in ref


def parse_ref(ref: str) -> tuple[str | None, str]:
    """``NAME@VERSION`` -> (NAME, hex); ``sha256:HEX`` -> (None, hex). The hex is a full
    sha256 or a prefix of at least 8 digits."""
    if ref.startswith(HASH_PREFIX):
        return None, check_hex(ref, "policy version")
    name, at, version = ref.rpartition("@")
    if not at or not name:
        raise PolicyStoreError(f"policy {ref!r}: expected NAME@VERSION or sha256:HEX")
    check_name(name)
    return name, check_hex(version, f"policy {name} version")


def resolve(records: dict[str, StoredPolicy], ref: str) -> StoredPolicy:
    """The one record ``ref`` names (:class:`PolicyStoreError` when none or several)."""
    name, prefix = parse_ref(ref)
    matches = [
        record
        for record in records.values()
        if record.sha256.startswith(prefix) and (name is None or record.name == name)
    ]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        listed = ", ".join(sorted(f"{r.name}@{r.sha256[:16]}" for r in matches))
        raise PolicyStoreError(f"policy {ref}: ambiguous ({listed}); give more hex digits")
    if name is not None:
        other = [r for r in records.values() if r.sha256.startswith(prefix)]
        if other:
            raise PolicyStoreError(
                f"policy {ref}: that version is registered as {other[0].name}, not {name}"
            )
        versions = sorted(r.sha256[:12] for r in records.values() if r.name == name)
        if versions:
            raise PolicyStoreError(
                f"policy {ref}: no such version of {name} (registered: {', '.join(versions)})"
            )
    raise PolicyStoreError(f"policy {ref}: not in the policy store ({POLICIES.name})")


def describe(record: StoredPolicy) -> dict[str, Any]:
    """What ``chuteflow policy show`` prints: the metadata, its key and short version."""
    return {
        "key": version_key(record.sha256),
        "short_version": record.sha256[:12],
        **record.metadata,
    }


# --- Kafka ------------------------------------------------------------------------------


def _ensure_store(client: KafkaClientConfig, timeout_s: float) -> None:
    from stream.admin import ensure_topics

    ensure_topics(client, [POLICIES], timeout=timeout_s)


def read_store(
    bootstrap: str | KafkaClientConfig, *, timeout_s: float = 30.0, ensure: bool = True
) -> dict[str, StoredPolicy]:
    """Every policy in the store, by hex sha256: the topic read from its beginning to the end
    it had when the read started (later records win, tombstones delete)."""
    client = as_client(bootstrap)
    if ensure:
        _ensure_store(client, timeout_s)
    try:
        stored = read_to_end(client, [POLICIES.name], timeout_s=timeout_s)
    except TopicReadError as error:
        raise PolicyStoreError(f"reading the store at {client.bootstrap}: {error}") from None
    records: dict[str, StoredPolicy] = {}
    for message in stored:
        key = message.key
        record = parse_record(key, message.value)
        if record is not None:
            records[record.sha256] = record
        elif message.value is None and key and key.startswith(HASH_PREFIX.encode()):
            records.pop(key[len(HASH_PREFIX) :].decode("ascii", "replace"), None)
    return records


def register_policy(
    bootstrap: str | KafkaClientConfig,
    name: str,
    check: ArtifactCheck,
    data: bytes,
    *,
    settings: Any = None,
    report: dict[str, Any] | None = None,
    timeout_s: float = 30.0,
) -> tuple[StoredPolicy, bool]:
    """Register ``data`` (checked by :func:`~decision.artifacts.inspect_artifact`) under
    ``name``; returns its record and whether it was new. The same bytes again return the
    existing record unchanged; the same bytes under another name are refused."""

    client = as_client(bootstrap)
    key, value = make_record(name, check, data, settings=settings, report=report)
    existing = read_store(client, timeout_s=timeout_s).get(check.sha256)
    if existing is not None:
        if existing.name != name:
            raise PolicyStoreError(
                f"these bytes are already registered as {existing.name}@{check.sha256[:12]}; "
                "a version has one name"
            )
        return existing, False
    failure = produce_all(
        client,
        [(POLICIES.name, key, value, None)],
        extra={"compression.type": "gzip", "message.max.bytes": MAX_RECORD_BYTES + 100_000},
        timeout_s=timeout_s,
    )
    if failure is not None:
        raise PolicyStoreError(f"writing {name} to {POLICIES.name}: {failure}")
    record = parse_record(key, value)
    assert record is not None  # made by make_record
    return record, True


def _cached(cache: Path, sha256: str, name: str | None) -> PolicyArtifact | None:
    """The cached artifact of a full hash, or None when it is not cached (or its metadata is
    unreadable or names another policy: then the store decides). A cached ``.onnx`` whose
    bytes do not hash to ``sha256`` is refused."""
    onnx_path = cache / f"{sha256}.onnx"
    meta_path = cache / f"{sha256}.json"
    if not onnx_path.is_file() or not meta_path.is_file():
        return None
    try:
        metadata = json.loads(meta_path.read_text())
        data = onnx_path.read_bytes()
        cached_name = str(metadata["name"])
        scenarios = tuple(str(s) for s in metadata.get("scenarios", ()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if name is not None and cached_name != name:
        return None
    actual = sha256_hex(data)
    if actual != sha256:
        raise PolicyStoreError(
            f"cached artifact {onnx_path} hashes to sha256:{actual}, not sha256:{sha256}: "
            "refusing it (delete the file to fetch it from the store again)"
        )
    return PolicyArtifact(cached_name, sha256, data, scenarios)


def _write_atomic(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def fetch_policy(
    bootstrap: str | KafkaClientConfig,
    ref: str,
    cache: str | Path | None = None,
    *,
    timeout_s: float = 30.0,
) -> PolicyArtifact:
    """The artifact ``ref`` (``NAME@VERSION`` or ``sha256:HEX``) names, its bytes checked
    against its sha256: from the cache for a full hash that is cached, else from the store
    (then written to the cache).

    Raises:
        PolicyStoreError: not found, ambiguous, or bytes (cached or stored) that do not match.
    """
    name, hex_value = parse_ref(ref)
    where = cache_dir(cache)
    if len(hex_value) == 64:
        cached = _cached(where, hex_value, name)
        if cached is not None:
            return cached
    record = resolve(read_store(bootstrap, timeout_s=timeout_s), ref)
    artifact = record.artifact()
    cached_file = where / f"{artifact.sha256}.onnx"
    if cached_file.is_file() and sha256_hex(cached_file.read_bytes()) != artifact.sha256:
        raise PolicyStoreError(
            f"cached artifact {cached_file} does not hash to sha256:{artifact.sha256}: "
            "refusing it (delete the file to fetch it from the store again)"
        )
    try:
        where.mkdir(parents=True, exist_ok=True)
        _write_atomic(cached_file, artifact.data)
        meta = json.dumps(record.metadata, sort_keys=True, indent=1).encode("utf-8")
        _write_atomic(where / f"{artifact.sha256}.json", meta)
    except OSError as error:
        raise PolicyStoreError(f"policy cache {where}: cannot write it ({error})") from None
    return artifact


class ArtifactFetcher:
    """Store artifacts of routed policies, fetched once per hash (cache directory or the policy
    topic, hash-checked by :func:`fetch_policy`)."""

    def __init__(self, client: KafkaClientConfig) -> None:
        self.client = client
        self._got: dict[str, PolicyArtifact] = {}

    def __call__(self, ref: PolicyRef) -> PolicyArtifact:
        assert ref.sha256 is not None
        got = self._got.get(ref.sha256)
        if got is None:
            got = self._got[ref.sha256] = fetch_policy(self.client, f"{ref.name}@{ref.sha256}")
        return got

    def prefetch(self, values: list[bytes]) -> None:
        """Fetch what control records name, ahead of the processor (errors are reported when
        the processor applies the route, as its dead letter)."""
        for value in values:
            try:
                for ref in decode_route(value).policies():
                    if ref.sha256 is not None:
                        self(ref)
            except Exception:  # reported by the processor when it applies the route
                continue


__all__ = [
    "CACHE_ENV",
    "DEFAULT_CACHE",
    "MAX_ATTACHMENT_BYTES",
    "ArtifactFetcher",
    "PolicyStoreError",
    "StoredPolicy",
    "cache_dir",
    "describe",
    "fetch_policy",
    "is_store_ref",
    "make_record",
    "parse_record",
    "parse_ref",
    "read_report",
    "read_settings",
    "read_store",
    "register_policy",
    "resolve",
]
