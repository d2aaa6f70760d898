"""Contracts: golden fixtures still parse, the codec round-trips, bad bytes get one error type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts import (
    EVENT_TYPES,
    AllocationDecided,
    DecodeError,
    PackageInducted,
    decode,
    encode,
)
from contracts.schema_export import export_schemas
from contracts.topics import ALL_TOPICS, ALLOCATIONS, INDUCTIONS, TOPIC_FOR_EVENT

FIXTURES = Path(__file__).parent.parent / "fixtures" / "contracts"
GOLDEN = sorted(FIXTURES.glob("v*/*.json"))


def test_every_event_type_has_a_golden_fixture() -> None:
    covered = {path.stem for path in GOLDEN}
    assert covered == set(EVENT_TYPES)


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_fixture_parses_and_round_trips(path: Path) -> None:
    raw = path.read_bytes()
    event = decode(raw)
    assert event.event_type == path.stem
    assert f"v{event.schema_version}" == path.parent.name
    assert decode(encode(event)) == event
    assert json.loads(encode(event)) == json.loads(raw)


def test_every_event_type_is_routed_to_exactly_one_topic() -> None:
    for event_type in EVENT_TYPES:
        assert sum(event_type in spec.event_types for spec in ALL_TOPICS) == 1
        assert TOPIC_FOR_EVENT[event_type].partitions > 0


def _golden(name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((FIXTURES / "v1" / f"{name}.json").read_text())
    return loaded


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.pop("package_id"), "package_id"),
        (lambda d: d.update(attempt=0), "attempt"),
        (lambda d: d.update(event_type="package_teleported"), "event_type"),
        (lambda d: d.update(event_time="2025-01-06T06:00:03+01:00"), "UTC"),
        (lambda d: d.update(event_time="2025-01-06T06:00:03"), "event_time"),
        (lambda d: d.update(surprise=1), "surprise"),
        (lambda d: d.update(schema_version=2), "schema_version"),
    ],
)
def test_invalid_events_raise_decode_error_with_reason(mutate: object, fragment: str) -> None:
    data = _golden("package_inducted")
    mutate(data)  # type: ignore[operator]
    raw = json.dumps(data).encode()
    with pytest.raises(DecodeError) as caught:
        decode(raw)
    assert fragment in caught.value.reason
    assert caught.value.raw == raw


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b"\xff\xfe", b"{}"])
def test_garbage_bytes_raise_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(raw)


def test_event_on_wrong_topic_is_rejected() -> None:
    raw = (FIXTURES / "v1" / "package_inducted.json").read_bytes()
    assert isinstance(decode(raw, INDUCTIONS), PackageInducted)
    with pytest.raises(DecodeError, match="not allowed"):
        decode(raw, ALLOCATIONS)


def test_allocation_counts_must_match_the_chute_map() -> None:
    data = _golden("allocation_decided")
    data["chutes_per_destination"] = {"D001": 1, "D002": 1}
    with pytest.raises(DecodeError, match="chutes_per_destination"):
        decode(json.dumps(data).encode())
    assert isinstance(decode(json.dumps(_golden("allocation_decided")).encode()), AllocationDecided)


def test_events_are_frozen() -> None:
    event = decode((FIXTURES / "v1" / "package_inducted.json").read_bytes())
    with pytest.raises(ValueError):
        event.attempt = 3  # type: ignore[misc]


def test_schema_export_writes_a_closed_schema_per_event(tmp_path: Path) -> None:
    paths = {path.name: path for path in export_schemas(tmp_path)}
    for event_type, model in EVENT_TYPES.items():
        version = model.model_fields["schema_version"].default
        schema = json.loads(paths[f"{event_type}.v{version}.schema.json"].read_text())
        assert schema["additionalProperties"] is False
        assert "event_time" in schema["required"]


def test_kafka_partition_matches_the_java_default_partitioner() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    from contracts.topics import kafka_partition

    java_default = DefaultPartitioner()
    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"site-large", "sité-ü".encode()]
    keys += [bytes(range(n, n + 13)) for n in range(0, 200, 17)]
    for key in keys:
        for partitions in (1, 6, 7):
            expected = java_default(key, list(range(partitions)), list(range(partitions)))
            assert kafka_partition(key, partitions) == expected


def test_allocation_without_the_routing_fields_still_parses() -> None:
    """Allocations written before the routing fields (policy hash, route revision, fallback)
    were added parse with their defaults."""
    old = _golden("allocation_decided")
    for name in ("policy_sha256", "route_revision", "fallback_reason", "fallback_from"):
        old.pop(name)
    event = decode(json.dumps(old).encode())
    assert isinstance(event, AllocationDecided)
    assert event.policy_sha256 is None and event.fallback_reason is None
