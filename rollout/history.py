"""``policy history``: what served a site when, interval by interval, from Kafka alone.

The allocation topic is the record of what the floor was told: every allocation names its
policy, artifact hash, route revision and any fallback. The control topic says why the route
changed. Nothing here trusts a worker's memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.codec import DecodeError, decode
from contracts.control import PolicyRoute
from contracts.events import AllocationDecided
from contracts.topics import ALLOCATIONS, message_key
from stream.clients import KafkaClientConfig
from stream.routing import route_records
from stream.topic_reader import read_to_end


@dataclass(frozen=True)
class Served:
    """One interval's served allocation."""

    day: str
    interval: int
    policy: str
    sha256: str | None
    route_revision: int | None
    fallback_reason: str | None
    decision_id: str


def served_history(
    client: str | KafkaClientConfig, site_id: str, day: str | None = None
) -> tuple[list[Served], list[PolicyRoute]]:
    """Every allocation of ``site_id`` (of day runs whose key starts with ``day``: a date, or
    a day key ``YYYY-MM-DD.<8 hex>`` for one run), first copy of each decision id, in interval
    order per day run; and the site's routes in revision order. Rows carry their day key, so
    two runs of one date are listed apart, never merged."""
    key = message_key(site_id)
    rows: list[Served] = []
    seen: set[str] = set()
    # every partition: a producer with another partitioner may have put the site anywhere
    for record in read_to_end(client, [ALLOCATIONS.name]):
        if record.key != key or record.value is None:
            continue
        try:
            event = decode(record.value)
        except DecodeError:
            continue
        if not isinstance(event, AllocationDecided) or event.decision_id in seen:
            continue
        seen.add(event.decision_id)
        day_key = event.decision_id.split("/")[1] if event.decision_id.count("/") >= 3 else ""
        if day is not None and not day_key.startswith(day):
            continue
        rows.append(
            Served(
                day=day_key,
                interval=event.interval_index,
                policy=event.policy_name,
                sha256=event.policy_sha256,
                route_revision=event.route_revision,
                fallback_reason=event.fallback_reason,
                decision_id=event.decision_id,
            )
        )
    routes = [route for _, route in route_records(client, site_id)]
    return rows, sorted(routes, key=lambda r: r.revision)


def spans(rows: list[Served]) -> list[tuple[str, int, int, str, int | None, int]]:
    """Consecutive intervals of one day under one policy and revision: (day, first, last,
    policy label, revision, fallbacks among them)."""
    out: list[tuple[str, int, int, str, int | None, int]] = []
    for row in rows:
        label = row.policy + (f"@{row.sha256[:12]}" if row.sha256 else "")
        if row.fallback_reason is not None:
            label = row.decision_id.rsplit("/", 1)[-1]
        fallback = int(row.fallback_reason is not None)
        if out:
            day, first, last, current, revision, fallbacks = out[-1]
            if (day, current, revision) == (row.day, label, row.route_revision) and (
                row.interval == last + 1
            ):
                out[-1] = (day, first, row.interval, current, revision, fallbacks + fallback)
                continue
        out.append((row.day, row.interval, row.interval, label, row.route_revision, fallback))
    return out


__all__ = ["Served", "served_history", "spans"]
