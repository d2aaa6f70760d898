"""The worker's record handling in memory: close only once the announced records arrived."""

from __future__ import annotations

import pytest

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


@pytest.mark.parametrize("closes_first", [False, True])
def test_a_restarted_worker_reading_the_next_interval_first_decides_as_before(
    closes_first: bool,
) -> None:
    """The crash race the reliability suite found: the old worker published allocation k and
    died before its snapshot was durable; the floor already ran interval k, so the successor
    reads k's records *before* the close of k-1 it must act on again. Kept apart until that
    close, they change nothing: the successor's allocations k and k+1 are the old ones."""
    import json

    scenario = load_scenario("small")
    groups = default_groups(scenario)
    demand = sample_day(groups, 2, scenario, seed=9)
    offsets: dict[str, int] = {}
    batch: list[tuple[str, bytes | None, bytes, int, int]] = []
    counts: dict[str, int] = {}
    publisher = MemoryPublisher()

    def emit(event: Envelope) -> None:
        if isinstance(event, IntervalClosed):
            event = event.model_copy(update={"events_in_interval": dict(counts)})
            counts.clear()
        publisher.publish(event)
        topic, key, value = publisher.records.pop()[:3]
        if not isinstance(event, IntervalClosed):
            counts[topic] = counts.get(topic, 0) + 1
        offsets[topic] = offsets.get(topic, -1) + 1
        batch.append((topic, key, value, 0, offsets[topic]))

    def allocations(records: list[object]) -> list[bytes]:
        return [r.value for r in records if r.topic == ALLOCATIONS.name]  # type: ignore[attr-defined]

    old = StreamProcessor({scenario.site_id: make_site(scenario, "proportional", None)})
    start = DayStarted(
        event_id="restart-day",
        event_time=demand.day_start,
        site_id=scenario.site_id,
        day_start=demand.day_start,
        day_type_group=day_type_group(groups, demand),
    )
    emit(start)
    counts.clear()  # day_started is not a floor record: closes do not count it
    (first,) = allocations(old.handle_many(batch))
    batch.clear()
    twin = SortationTwin(scenario, demand, seed=9, emit=emit)
    allocation = decode(first)
    k = 3
    while twin.interval_index < k - 1:
        assert isinstance(allocation, AllocationDecided)
        twin.run_interval(owner_of(scenario, allocation))
        (value,) = allocations(old.handle_many(batch))
        batch.clear()
        allocation = decode(value)
    # interval k-1 plays; the old worker applies half of it, snapshots, then the rest
    assert isinstance(allocation, AllocationDecided)
    twin.run_interval(owner_of(scenario, allocation))
    records, batch[:] = list(batch), []
    half = len(records) // 2
    assert old.handle_many(records[:half]) == []
    snapshot = json.loads(json.dumps(old.sites[scenario.site_id].snapshot()))
    (decided_k,) = allocations(old.handle_many(records[half:]))
    # the floor runs interval k under the published allocation
    twin.run_interval(owner_of(scenario, decode(decided_k)))  # type: ignore[arg-type]
    interval_k = list(batch)
    batch.clear()

    new = StreamProcessor({scenario.site_id: make_site(scenario, "proportional", None)})
    new.sites[scenario.site_id].restore(snapshot)
    # Kafka orders records per topic partition only: the successor reads the rest of k-1 and
    # all of k topic by topic, the closes of k-1 and k first or last (the two worst orders
    # for it), and the records of k-1 before the snapshot again (skipped by offset)
    order = {name: rank for rank, name in enumerate(sorted({r[0] for r in records + interval_k}))}
    order[INTERVALS.name] = -1 if closes_first else len(order)
    again = sorted(records + interval_k, key=lambda r: order[r[0]])  # stable within a topic
    redone = allocations(new.handle_many(again))
    assert redone == [decided_k, *allocations(old.handle_many(interval_k))]
