"""The records the worker and the store write beyond floor events (audit, route
acknowledgements, dead letters, store records and aliases) match their contract models and exported
schemas: the writers' real output is validated, so a field added to a writer without its
contract fails here. Also: ``day_type_group`` is only a hint, absent or unknown."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from contracts.catalog import MESSAGE_TYPES, json_schema
from contracts.codec import decode, encode
from contracts.control import PolicyRef, PolicyRoute
from contracts.events import AllocationDecided, DayStarted
from contracts.records import DeadLetter, DecisionAudit, PolicyStoreRecord, RouteReceived
from contracts.topics import ALLOCATIONS, CONTROL, DEAD_LETTER, DECISIONS_AUDIT, INTERVALS
from floor.daytypes import default_groups
from floor.scenario import Scenario, load_scenario
from replay.loop import day_type_group, owner_of
from replay.publisher import MemoryPublisher
from stream.deadletter import OutRecord, dead_letter
from stream.processor import StreamProcessor
from stream.worker import make_site
from twin.groups import sample_day
from twin.sim import SortationTwin


def _check(name: str, model: type[BaseModel], value: bytes) -> dict[str, Any]:
    """``value`` parses as ``model`` and validates against the exported schema of ``name``;
    every key it has is a declared field (open models too: a writer's new field must be
    described before it ships)."""
    body: dict[str, Any] = json.loads(value)
    parsed = model.model_validate(body)
    Draft202012Validator(json_schema(MESSAGE_TYPES[name])).validate(body)
    undeclared = set(body) - set(model.model_fields)
    assert not undeclared, f"{name}: the writer adds undescribed fields {sorted(undeclared)}"
    for field_name in model.model_fields:
        nested = getattr(parsed, field_name)
        if isinstance(nested, BaseModel):
            assert not set(body[field_name]) - set(type(nested).model_fields), field_name
    return body


class _Day:
    """A small-site day decided in memory by the worker's processor, closed loop with the twin."""

    def __init__(self, scenario: Scenario, processor: StreamProcessor, seed: int = 5) -> None:
        self.scenario = scenario
        self.processor = processor
        groups = default_groups(scenario)
        self.demand = sample_day(groups, 1, scenario, seed=seed)
        self.group = day_type_group(groups, self.demand)
        self.publisher = MemoryPublisher()
        self.out: list[OutRecord] = []
        self.offset = 0

    def feed(self, topic: str, key: bytes | None, value: bytes) -> list[OutRecord]:
        self.offset += 1
        out = self.processor.handle(topic, key, value, 0, self.offset)
        self.out += out
        return out

    def start(self, **fields: Any) -> DayStarted:
        return DayStarted(
            event_id="day-hint-test",
            event_time=self.demand.day_start,
            site_id=self.scenario.site_id,
            day_start=self.demand.day_start,
            **fields,
        )

    def run(self, start: DayStarted | bytes, intervals: int) -> list[AllocationDecided]:
        raw = start if isinstance(start, bytes) else encode(start)
        self.feed(INTERVALS.name, self.scenario.site_id.encode(), raw)
        twin = SortationTwin(self.scenario, self.demand, seed=7, emit=self.publisher.publish)
        for _ in range(intervals):
            allocation = self.allocations()[-1]
            twin.run_interval(owner_of(self.scenario, allocation))
            records, self.publisher.records = self.publisher.records, []
            for topic, key, value in records:
                self.feed(topic, key, value)
        return self.allocations()

    def allocations(self) -> list[AllocationDecided]:
        events = [decode(r.value) for r in self.out if r.topic == ALLOCATIONS.name]
        return [e for e in events if isinstance(e, AllocationDecided)]


@pytest.fixture(scope="module")
def small() -> Scenario:
    return load_scenario("small")


def test_decision_audit_and_route_acknowledgement_match_their_contract(small: Scenario) -> None:
    day = _Day(small, StreamProcessor({small.site_id: make_site(small, "static", None)}))
    route = PolicyRoute(
        event_id="route-1",
        event_time=datetime(2025, 1, 6, 5, 0, tzinfo=UTC),
        site_id=small.site_id,
        revision=1,
        serving=PolicyRef(name="proportional"),
        shadows=[PolicyRef(name="static")],
        action="route",
        reason="test",
    )
    acknowledged = day.feed(CONTROL.name, small.site_id.encode(), encode(route))
    assert [r.topic for r in acknowledged] == [DECISIONS_AUDIT.name]
    body = _check("route_received", RouteReceived, acknowledged[0].value)
    assert body["kind"] == "route_received" and body["revision"] == 1
    day.run(day.start(day_type_group=day.group), intervals=2)
    audits = [r.value for r in day.out if r.topic == DECISIONS_AUDIT.name][1:]
    assert len(audits) == 3  # the day's first decision and two interval closes
    triggers = [_check("decision_audit", DecisionAudit, value)["trigger"] for value in audits]
    assert triggers[0] == "day_started" and set(triggers[1:]) == {"interval_closed"}
    assert all(json.loads(value)["shadows"] for value in audits)


def test_dead_letters_match_their_contract() -> None:
    for reason, key, value in [
        ("decode: invalid event at <root>: Invalid JSON", b"site-small", b"\xff\xfe not json"),
        ("unknown_site: 'x'", None, b"{}"),
        ("duplicate: PackageSorted already applied", b"k" * 5000, b"v" * 40_000),
    ]:
        record = dead_letter(
            reason, topic="chuteflow.sortation.v1", key=key, value=value, partition=3, offset=9
        )
        assert record.topic == DEAD_LETTER.name
        body = _check("dead_letter", DeadLetter, record.value)
        assert body["kind"] == reason.split(":")[0]
        assert body["truncated"] is (len(value) > 16 * 1024)


def test_policy_store_records_match_their_contract() -> None:
    from decision.artifacts import inspect_artifact
    from evaluation.demo import SHIPPED_POLICIES
    from stream.policy_store import make_record, read_report

    path = SHIPPED_POLICIES / "drmarl-small.onnx"
    data = path.read_bytes()
    check = inspect_artifact(data, ["small"])
    reports = sorted((SHIPPED_POLICIES / "reports").glob("*"))
    report = read_report(reports[0]) if reports else None
    for settings, attached in [(None, None), ({"seed": 1, "algo": "drmarl"}, report)]:
        key, value = make_record("drmarl-small", check, data, settings=settings, report=attached)
        assert key == f"sha256:{check.sha256}".encode()
        body = _check("policy_store_record", PolicyStoreRecord, value)
        assert body["metadata"]["version"] == check.sha256


def test_policy_alias_records_match_their_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """``set_alias`` and ``remove_alias`` run as written; only the broker is replaced by a
    recorder of what they hand the producer (the real store read is covered by the CLI's
    Kafka tests), so the bytes checked are the bytes they would write."""
    import re

    import stream.policy_alias as policy_alias
    from contracts.asyncapi import build_document
    from contracts.records import PolicyAlias
    from contracts.topics import POLICIES
    from decision.artifacts import inspect_artifact
    from evaluation.demo import SHIPPED_POLICIES
    from stream.policy_store import make_record, parse_record

    data = (SHIPPED_POLICIES / "drmarl-small.onnx").read_bytes()
    check = inspect_artifact(data, ["small"])
    stored = parse_record(*make_record("drmarl-small", check, data))
    assert stored is not None
    registry = policy_alias.Registry({stored.sha256: stored}, {})
    written: list[tuple[str, bytes, bytes | None, int | None]] = []

    def produce_all(_client: Any, records: Any, **_: Any) -> None:
        written.extend(records)

    monkeypatch.setattr(policy_alias, "read_registry", lambda *_a, **_k: registry)
    monkeypatch.setattr(policy_alias, "produce_all", produce_all)
    made = policy_alias.set_alias("localhost:1", f"drmarl-small@{check.sha256[:8]}", "champion")
    assert len(written) == 1
    topic, key, value, partition = written[0]
    assert topic == POLICIES.name and partition is None and value is not None
    body = _check("policy_alias", PolicyAlias, value)
    assert body["version"] == check.sha256 and body["name"] == "drmarl-small"
    assert datetime.fromisoformat(body["set_at"]).utcoffset() is not None
    # the key the document declares for the message is the key the writer uses
    document = build_document()
    key_schema = document["components"]["messages"]["policy_alias"]["bindings"]["kafka"]["key"]
    assert re.fullmatch(key_schema["pattern"].strip("^$"), key.decode("ascii"))
    assert key == b"alias:drmarl-small@champion"
    # what the store's readers make of it: the same alias back, and no policy record
    assert policy_alias.parse_alias(key, value) == (key.decode(), made)
    assert parse_record(key, value) is None
    registry.aliases[made.key] = made
    assert policy_alias.remove_alias("localhost:1", "drmarl-small", "champion")
    assert written[1] == (POLICIES.name, key, None, None)  # the tombstone the model's doc names
    assert policy_alias.parse_alias(key, None) == (key.decode(), None)


def test_a_day_without_a_group_or_with_an_unknown_one_is_decided_as_with_the_right_one(
    small: Scenario,
) -> None:
    """The hint never changes a decision: the worker plans from its own forecast."""
    decided: dict[str, list[dict[str, Any]]] = {}
    for label in ("declared", "absent", "unknown", "null"):
        processor = StreamProcessor({small.site_id: make_site(small, "proportional", None)})
        day = _Day(small, processor)
        start: DayStarted | bytes
        if label == "declared":
            start = day.start(day_type_group=day.group)
        elif label == "unknown":
            start = day.start(day_type_group=9_999)
        elif label == "null":
            start = day.start(day_type_group=None)
        else:  # a producer that never heard of the field: it is not in the JSON at all
            body = json.loads(encode(day.start()))
            del body["day_type_group"]
            start = json.dumps(body).encode()
        allocations = day.run(start, intervals=3)
        assert [a.interval_index for a in allocations] == [0, 1, 2, 3], label
        assert not [r for r in day.out if r.topic == DEAD_LETTER.name], label
        decided[label] = [json.loads(encode(a)) for a in allocations]
        if label == "unknown":
            assert processor.stats["day_type_group_ignored"] == 1
    assert decided["absent"] == decided["declared"]
    assert decided["unknown"] == decided["declared"]
    assert decided["null"] == decided["declared"]


def test_an_unknown_group_survives_a_restart_from_the_snapshot(small: Scenario) -> None:
    first = StreamProcessor({small.site_id: make_site(small, "proportional", None)})
    day = _Day(small, first)
    day.run(day.start(day_type_group=4_321), intervals=1)
    snapshot = first.sites[small.site_id].snapshot()
    assert snapshot["day_type_group"] is None
    restored = make_site(small, "proportional", None)
    restored.restore(json.loads(json.dumps(snapshot)))
    assert restored.day_open and restored.day_type_group is None
    assert restored.tracker.interval_index == first.sites[small.site_id].tracker.interval_index


def test_old_day_started_records_with_a_group_still_parse() -> None:
    from pathlib import Path

    golden = Path(__file__).parent.parent / "fixtures" / "contracts" / "v1" / "day_started.json"
    event = decode(golden.read_bytes())
    assert isinstance(event, DayStarted) and event.day_type_group == 3
