"""The twin's events (``twin.events.EventEmitter``) are exactly what the contract's codec
accepts and writes: what a replay publishes is what a WCS would send, byte for byte. The fast
path (package events encoded without objects, for the replay's driver) writes the same bytes."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import pytest

from contracts.codec import decode, encode
from contracts.events import Envelope
from contracts.topics import TOPIC_FOR_EVENT
from decision.build import build_engine
from floor.daytypes import default_groups
from floor.scenario import load_scenario
from floor.site import load_site
from replay.loop import FloorRecords
from replay.publisher import event_type_of
from twin.closed_loop import run_day
from twin.day import DayDemand
from twin.events import IntArray
from twin.groups import sample_day
from twin.sim import SortationTwin


@pytest.mark.parametrize(("name", "group", "intervals"), [("small", 0, None), ("large", 20, 12)])
def test_every_twin_event_round_trips_through_the_codec_to_the_same_bytes(
    name: str, group: int, intervals: int | None
) -> None:
    scenario = load_scenario(name)
    demand = sample_day(default_groups(scenario), group, scenario, seed=4)
    events: list[Envelope] = []
    run_day(
        build_engine(load_site(scenario), "proportional"),
        demand,
        4,
        emit=events.append,
        intervals=intervals,
    )
    floor = [e for e in events if type(e).__name__ != "AllocationDecided"]
    kinds = {type(e).__name__ for e in floor}
    assert {"PackageInducted", "PackageSorted", "IntervalClosed", "ChuteStateChanged"} <= kinds
    with warnings.catch_warnings():
        # a field of the wrong Python type (a numpy integer, say) serializes with a warning
        warnings.simplefilter("error")
        for event in floor:
            raw = encode(event)
            again = decode(raw)
            assert type(again) is type(event)
            assert again == event
            assert encode(again) == raw


class _Objects:
    """The object path's stream: every event encoded by the codec, as ``(topic, value)``."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes]] = []

    def __call__(self, event: Envelope) -> None:
        self.records.append((TOPIC_FOR_EVENT[event_type_of(event)].name, encode(event)))


class _Encoded(_Objects):
    """The fast path's stream (``twin.events.EncodedEmit``): package events arrive as bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.encoded_records = 0

    def encoded(self, event_type: str, time: datetime, value: bytes) -> None:
        assert decode(value).event_time == time  # what a replay paces by
        self.records.append((TOPIC_FOR_EVENT[event_type].name, value))
        self.encoded_records += 1


def _streams(demand: DayDemand, intervals: int | None) -> tuple[_Objects, _Encoded]:
    scenario = demand.scenario
    run = run_day(build_engine(load_site(scenario), "proportional"), demand, 4, intervals=intervals)
    objects, fast = _Objects(), _Encoded()
    for emit in (objects, fast):
        twin = SortationTwin(scenario, demand, seed=4, emit=emit)
        for decision in run.decisions:
            twin.run_interval(decision.owner)
    return objects, fast


@pytest.mark.parametrize(
    ("name", "group", "intervals", "exceptions"),
    [("small", 0, None, True), ("large", 20, 12, False)],
)
def test_the_fast_path_publishes_the_object_path_s_bytes_in_its_order(
    name: str, group: int, intervals: int | None, exceptions: bool
) -> None:
    scenario = load_scenario(name)
    demand = sample_day(default_groups(scenario), group, scenario, seed=4)
    objects, fast = _streams(demand, intervals)
    assert fast.encoded_records > 0.9 * len(fast.records)  # the fast path did run
    # where a byte-level slip would hide: microseconds, the last attempt's recirculation
    assert any(b"." in value.split(b'"event_time":"')[1][:27] for _, value in fast.records)
    last_attempts = any(b'"to_exception":true' in value for _, value in fast.records)
    assert last_attempts == exceptions
    assert fast.records == objects.records


def test_package_ids_json_must_escape_are_escaped_as_the_codec_does() -> None:
    scenario = load_scenario("small")
    demand = sample_day(default_groups(scenario), 0, scenario, seed=4)
    packages = demand.package_list()
    odd = ('say "hi"', "back\\slash", "tab\there", "bell\x07", "del\x7f", "é-ü", "emoji-\U0001f4e6")
    ids = tuple(f"{odd[i % len(odd)]}-{i}" for i in range(len(packages.package_id)))
    demand = replace(demand, packages=replace(packages, package_id=ids))
    objects, fast = _streams(demand, 3)
    assert fast.encoded_records > 0
    assert fast.records == objects.records


def _published(demand: DayDemand, owners: list[IntArray], fast: bool) -> list[tuple[str, bytes]]:
    """``(topic, value)`` as a replay publishes them (``replay.loop.FloorRecords``)."""
    out: list[tuple[str, bytes]] = []
    records = FloorRecords(lambda kind, topic, time, value: out.append((topic, value)))
    emit: Callable[[Envelope], None] = records if fast else lambda event: records(event)
    twin = SortationTwin(demand.scenario, demand, seed=4, emit=emit)
    for owner in owners:
        twin.run_interval(owner)
    return out


def test_a_replay_announces_the_same_interval_counts_on_either_path() -> None:
    scenario = load_scenario("small")
    demand = sample_day(default_groups(scenario), 0, scenario, seed=4)
    run = run_day(build_engine(load_site(scenario), "proportional"), demand, 4)
    owners = [decision.owner for decision in run.decisions]
    fast = _published(demand, owners, fast=True)
    assert b'"events_in_interval":{"' in fast[-1][1]
    assert fast == _published(demand, owners, fast=False)
