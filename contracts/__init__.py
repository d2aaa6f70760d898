"""Event contracts: the stable edge between chuteflow, the WCS, the twin and replay."""

from contracts.codec import DecodeError, decode, encode
from contracts.events import (
    EVENT_TYPES,
    AllocationDecided,
    ChuteStateChanged,
    DayStarted,
    Envelope,
    Event,
    IntervalClosed,
    PackageInducted,
    PackageRecirculated,
    PackageSorted,
)
from contracts.topics import ALL_TOPICS, TOPIC_FOR_EVENT, TopicSpec, message_key

__all__ = [
    "ALL_TOPICS",
    "EVENT_TYPES",
    "TOPIC_FOR_EVENT",
    "AllocationDecided",
    "ChuteStateChanged",
    "DayStarted",
    "DecodeError",
    "Envelope",
    "Event",
    "IntervalClosed",
    "PackageInducted",
    "PackageRecirculated",
    "PackageSorted",
    "TopicSpec",
    "decode",
    "encode",
    "message_key",
]
