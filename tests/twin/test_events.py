"""The twin's events (``twin.events.EventEmitter``) are exactly what the contract's codec
accepts and writes: what a replay publishes is what a WCS would send, byte for byte."""

from __future__ import annotations

import warnings

import pytest

from contracts.codec import decode, encode
from contracts.events import Envelope
from decision.build import build_engine
from floor.daytypes import default_groups
from floor.scenario import load_scenario
from floor.site import load_site
from twin.closed_loop import run_day
from twin.groups import sample_day


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
