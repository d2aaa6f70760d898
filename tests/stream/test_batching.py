"""The batch consumer's fetch order is faust's: ``stream.batching.interleaved`` against faust's
own ``DefaultSchedulingStrategy`` (no broker needed)."""

from __future__ import annotations

import random
from collections import namedtuple

import pytest
from faust.transport.utils import DefaultSchedulingStrategy
from faust.types.tuples import TP

from stream.batching import BatchRecord, interleaved

Record = namedtuple("Record", "topic partition offset")


def fetch(seed: int) -> dict[TP, list[Record]]:
    """A fetch of several topics and partitions, uneven lengths, some empty."""
    rng = random.Random(seed)
    records: dict[TP, list[Record]] = {}
    topics = [f"t{i}" for i in range(rng.randint(1, 5))]
    pairs = [(t, p) for t in topics for p in range(rng.randint(1, 4))]
    rng.shuffle(pairs)  # faust orders topics and partitions by first appearance
    for topic, partition in pairs:
        n = rng.choice([0, 1, 2, rng.randint(0, 50)])
        records[TP(topic, partition)] = [Record(topic, partition, o) for o in range(n)]
    return records


@pytest.mark.parametrize("seed", range(40))
def test_interleaved_is_fausts_round_robin(seed: int) -> None:
    records = fetch(seed)
    ours = [(tp, r.offset) for tp, r in interleaved(records)]
    scheduler = DefaultSchedulingStrategy()  # type: ignore[abstract]  # (faust types __init__ abstract)
    fausts = [(tp, r.offset) for tp, r in scheduler.iterate(records)]
    assert ours == fausts
    assert len(ours) == sum(len(v) for v in records.values())


def test_interleaved_of_nothing() -> None:
    assert list(interleaved({})) == []


def test_batch_record_reads_like_a_faust_message() -> None:
    tp = TP("chuteflow.sortation.v1", 3)
    record = BatchRecord(tp.topic, 3, 17, b"site", b"{}", tp)
    assert (record.topic, record.partition, record.offset) == (tp.topic, 3, 17)
    assert (record.key, record.value, record.tp, record.acked) == (b"site", b"{}", tp, False)
