"""The worker's record handling in memory: close only once the announced records arrived."""

from __future__ import annotations

from contracts.codec import decode
from contracts.events import AllocationDecided, DayStarted, Envelope, IntervalClosed
from contracts.topics import ALLOCATIONS, INTERVALS
from floor.daytypes import default_groups
from floor.scenario import load_scenario
from replay.loop import day_type_group, owner_of
from replay.publisher import MemoryPublisher
from stream.deadletter import original_value
from stream.processor import StreamProcessor
from stream.worker import make_site
from twin.groups import sample_day
from twin.sim import SortationTwin


def test_interval_closed_waits_for_the_records_it_announces() -> None:
    scenario = load_scenario("small")
    groups = default_groups(scenario)
    demand = sample_day(groups, 1, scenario, seed=3)
    processor = StreamProcessor({scenario.site_id: make_site(scenario, "proportional", None)})
    publisher = MemoryPublisher()
    counts: dict[str, int] = {}

    def emit(event: Envelope) -> None:
        if isinstance(event, IntervalClosed):
            event = event.model_copy(update={"events_in_interval": dict(counts)})
        else:
            publisher.publish(event)
            topic = publisher.records[-1][0]
            counts[topic] = counts.get(topic, 0) + 1
            return
        publisher.publish(event)

    start = DayStarted(
        event_id="d",
        event_time=demand.day_start,
        site_id=scenario.site_id,
        day_start=demand.day_start,
        day_type_group=day_type_group(groups, demand),
    )
    publisher.publish(start)
    out = processor.handle(*publisher.records.pop()[:3])
    first = decode(out[0].value)
    assert isinstance(first, AllocationDecided) and first.interval_index == 0
    twin = SortationTwin(scenario, demand, seed=3, emit=emit)

    twin.run_interval(owner_of(scenario, first))
    records = publisher.records
    close = next(r for r in records if r[0] == INTERVALS.name)
    floor = [r for r in records if r[0] != INTERVALS.name]
    # the close overtakes the last 5 records (another topic's partition was read later)
    assert processor.handle_many([(t, k, v, 0, i) for i, (t, k, v) in enumerate(floor[:-5])]) == []
    assert processor.handle(*close) == []
    tail = enumerate(floor[-5:], start=len(floor) - 5)  # offsets go on where they stopped
    out = processor.handle_many([(t, k, v, 0, i) for i, (t, k, v) in tail])
    allocations = [decode(r.value) for r in out if r.topic == ALLOCATIONS.name]
    assert [a.interval_index for a in allocations if isinstance(a, AllocationDecided)] == [1]
    # the same close again (a producer's resend, not a redelivery below the applied offset):
    # a dead letter saying why, never a second decision
    again = processor.handle(*close)
    assert [original_value(r.value)[0].split(":")[0] for r in again] == ["duplicate"]
    assert processor.stats["dead_lettered"] == 1 and processor.stats["decisions"] == 2
