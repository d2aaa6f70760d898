"""The site catalog's record (``contracts/sites.py``): what it carries, what it refuses, and
that a compacted read of the topic is the latest entry per site (``stream.site_catalog.fold``)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from contracts.catalog import MESSAGE_TYPES, json_schema
from contracts.control import PolicyRef
from contracts.sites import (
    MAX_ENTRY_BYTES,
    CatalogError,
    SiteCatalogEntry,
    decode_entry,
    encode_entry,
    make_entry,
)
from contracts.topics import ALL_TOPICS, SITES
from stream.site_catalog import fold
from stream.topic_reader import Record

WHEN = datetime(2025, 1, 6, 5, 20, tzinfo=UTC)
YAML = "name: tiny\nsite_id: s-1\n"
GROUPS = Path(__file__).resolve().parents[2] / "floor" / "scenarios" / "groups-small.npz"


def test_the_catalog_is_a_compacted_topic_every_worker_reads_whole() -> None:
    assert SITES in ALL_TOPICS
    assert SITES.partitions == 1 and dict(SITES.configs)["cleanup.policy"] == "compact"
    assert SITES.records == ("site_catalog_entry",) and SITES.summary


def test_an_entry_round_trips_and_matches_its_exported_schema() -> None:
    data = GROUPS.read_bytes()
    entry = make_entry(
        "s-1",
        YAML,
        revision=3,
        added_at=WHEN,
        groups=data,
        policy=PolicyRef(name="static"),
        added_by="ops-1",
    )
    raw = encode_entry(entry)
    again = decode_entry(b"s-1", raw)
    assert again == entry and again.groups_bytes() == data
    assert entry.groups_sha256 == hashlib.sha256(data).hexdigest()
    Draft202012Validator(json_schema(MESSAGE_TYPES["site_catalog_entry"])).validate(json.loads(raw))
    plain = make_entry("s-1", YAML, revision=1, added_at=WHEN)
    assert plain.policy == PolicyRef(name="proportional") and plain.groups_bytes() is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"site_id": "bad id!"}, "site_id"),
        ({"revision": 0}, "revision"),
        ({"site_yaml": ""}, "site_yaml"),
        ({"added_at": "2025-01-06T05:20:00"}, "added_at"),
        ({"policy": {"name": "lookahead", "sha256": None}}, "policy"),
        ({"policy": {"name": "x", "sha256": "abc"}}, "policy.sha256"),
        ({"groups_npz_base64": "AAAA"}, "go together"),
        ({"groups_npz_base64": "AAAA", "groups_sha256": "0" * 64}, "not the sha256"),
        ({"groups_npz_base64": "@@@@", "groups_sha256": "0" * 64}, "not base64"),
        ({"surprise": 1}, "surprise"),
        ({"format": "chuteflow.site/2"}, "format"),
    ],
)
def test_a_bad_entry_is_refused_with_one_line(change: dict[str, object], reason: str) -> None:
    good = json.loads(encode_entry(make_entry("s-1", YAML, revision=1, added_at=WHEN)))
    raw = json.dumps({**good, **change}).encode()
    with pytest.raises(CatalogError) as caught:
        decode_entry(None, raw)
    assert reason in caught.value.reason and "\n" not in caught.value.reason


def test_undecodable_mismatched_and_oversized_records_are_refused() -> None:
    raw = encode_entry(make_entry("s-1", YAML, revision=1, added_at=WHEN))
    for bad in (b"\xff not json", b"[]", b"null"):
        with pytest.raises(CatalogError, match="invalid catalog entry"):
            decode_entry(b"s-1", bad)
    with pytest.raises(CatalogError, match="key_mismatch"):
        decode_entry(b"s-2", raw)
    with pytest.raises(CatalogError, match="exceeds"):
        decode_entry(b"s-1", b" " * (MAX_ENTRY_BYTES + 1))
    # groups too large for one record: refused when the entry is made, before any write
    with pytest.raises(CatalogError, match="too large"):
        make_entry("s-1", YAML, revision=1, added_at=WHEN, groups=b"\0" * MAX_ENTRY_BYTES)


def test_the_large_sites_shipped_groups_fit_one_entry() -> None:
    data = (GROUPS.parent / "groups-large.npz").read_bytes()
    entry = make_entry("site-large", YAML, revision=1, added_at=WHEN, groups=data)
    assert 900_000 < len(encode_entry(entry)) <= MAX_ENTRY_BYTES


def _record(offset: int, key: str, value: bytes | None) -> Record:
    return Record(SITES.name, 0, offset, key.encode(), value, 0)


def test_a_read_of_the_catalog_keeps_the_latest_entry_and_drops_tombstones() -> None:
    def entry(site: str, revision: int) -> bytes:
        return encode_entry(make_entry(site, YAML, revision=revision, added_at=WHEN))

    read = fold(
        [
            _record(0, "a", entry("a", 1)),
            _record(1, "b", entry("b", 1)),
            _record(2, "a", entry("a", 2)),
            _record(3, "b", None),
            _record(4, "a", b"\xff garbage"),  # refused: the site keeps revision 2
            _record(5, "c", entry("d", 1)),  # keyed as another site: refused
        ]
    )
    assert {site: e.revision for site, e in read.entries.items()} == {"a": 2}
    assert [key for key, _ in read.refused] == ["a", "c"]
    assert read.next_offset == 6


def test_the_example_is_what_site_add_writes_for_the_small_site() -> None:
    from chuteflow.cli.site import _site_text
    from contracts.examples import EXAMPLES

    [example] = EXAMPLES["site_catalog_entry"]
    entry = SiteCatalogEntry.model_validate(example)
    text, _ = _site_text("small", "site-small-2")
    assert entry.site_yaml == text
