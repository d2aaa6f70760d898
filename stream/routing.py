"""The control topic's I/O: read every site's current route, write a new one.

The route model and its rules are in ``contracts/control.py``. A new route always carries the
site's current revision + 1 (read from the topic just before), so a worker that sees an older
revision after a newer one (a redelivery) ignores it; two operators racing on one site get
the same revision and the second record is ignored by the workers as stale (``policy routes``
shows which one holds).
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from contracts.codec import DecodeError, decode_route, encode
from contracts.control import BUILTIN_SERVABLE, PolicyRef, PolicyRoute
from contracts.topics import CONTROL, DEAD_LETTER, DECISIONS_AUDIT, message_key
from floor.errors import ChuteflowError
from stream.clients import KafkaClientConfig, as_client, produce_all
from stream.topic_reader import read_to_end, site_partition


class RoutingError(ChuteflowError):
    """A route could not be written; one line."""


def route_records(
    bootstrap: str | KafkaClientConfig, site_id: str | None = None, *, timeout_s: float = 30.0
) -> list[tuple[int, PolicyRoute]]:
    """(Kafka timestamp, route) of every valid control record, of one site or of all, in
    offset order per partition. Every partition is read, not only the one the site's key maps
    to (a producer with another partitioner may have put a route elsewhere). A record that does
    not decode, or whose key is not its site, is skipped: the worker dead-letters it, a reader
    ignores it."""
    out = []
    for record in read_to_end(bootstrap, [CONTROL.name], timeout_s=timeout_s):
        if record.value is None:
            continue
        try:
            route = decode_route(record.value)
        except DecodeError:
            continue
        if record.key != message_key(route.site_id):
            continue
        if site_id is None or route.site_id == site_id:
            out.append((record.timestamp_ms, route))
    return out


def read_routes(
    bootstrap: str | KafkaClientConfig, *, timeout_s: float = 30.0
) -> dict[str, PolicyRoute]:
    """Every site's current route (highest revision), read from the control topic."""
    routes: dict[str, PolicyRoute] = {}
    for _, route in route_records(bootstrap, timeout_s=timeout_s):
        current = routes.get(route.site_id)
        if current is None or route.revision > current.revision:
            routes[route.site_id] = route
    return routes


def new_route(current: PolicyRoute | None, site_id: str, **fields: Any) -> PolicyRoute:
    """The route after ``current`` with ``fields`` changed: revision + 1, new id and time."""
    base: dict[str, Any] = {} if current is None else current.model_dump()
    base.update(
        event_id=f"route-{uuid.uuid4().hex}",
        event_time=datetime.now(UTC),
        site_id=site_id,
        revision=(0 if current is None else current.revision) + 1,
        issued_by=f"{socket.gethostname()}",
        reason="",
        canary=None,
    )
    base.update(fields)
    return PolicyRoute.model_validate(base)


def publish_routes(
    bootstrap: str | KafkaClientConfig,
    routes: list[PolicyRoute],
    *,
    timeout_s: float = 30.0,
    wait_applied: bool = False,
) -> dict[str, str]:
    """Write ``routes`` (each on its site's partition) and wait until the broker has them.

    With ``wait_applied``, also wait until the worker that owns each site has taken its route
    (its ``route_received`` audit record) or refused it (a dead letter): from then on the route
    decides the site's next interval, whatever order the worker's fetches come in. Returns, per
    site, ``applied by <worker>``, ``refused: <reason>`` or ``not applied within <t> s`` (no
    worker serves the site, or it is catching up)."""

    client = as_client(bootstrap)
    watch = _Acknowledgements(client, routes) if wait_applied else None
    records = [
        (
            CONTROL.name,
            message_key(route.site_id),
            encode(route),
            site_partition(route.site_id, CONTROL.partitions),
        )
        for route in routes
    ]
    failure = produce_all(client, records, timeout_s=timeout_s)
    if failure is not None:
        if watch is not None:
            watch.close()
        raise RoutingError(f"writing {CONTROL.name}: {failure}")
    if watch is None:
        return {route.site_id: "written" for route in routes}
    return watch.wait(timeout_s)


def servable_ref(name: str, sha256: str | None) -> PolicyRef | None:
    """The route reference of what a worker serves: a servable built-in, or a store version
    (it has the artifact's hash); None for a file outside the store (no route can name it)."""
    if sha256 is not None:
        return PolicyRef(name=name, sha256=sha256)
    return PolicyRef(name=name) if name in BUILTIN_SERVABLE else None


def worker_default_routes(
    current: dict[str, PolicyRoute], served: dict[str, PolicyRef | None], worker: str
) -> list[PolicyRoute]:
    """Revision-1 routes (action ``worker-default``) for the sites a worker serves with its
    ``--policy`` that have no route yet: so ``policy routes`` shows what serves them and a
    rollback can return to it. A site that already has a route, or whose policy no route can
    name, gets none. If an operator's revision 1 races with it, the later one is stale for the
    workers (``policy routes`` shows which holds), as for any two writers."""
    out = []
    for site_id, ref in sorted(served.items()):
        if site_id in current or ref is None:
            continue
        route = new_route(
            None,
            site_id,
            serving=ref,
            action="worker-default",
            reason=f"served by worker {worker}'s --policy (no route on the control topic)",
        )
        out.append(route)
    return out


class _Acknowledgements:
    """Reads the sites' audit and dead-letter partitions from their end before the routes are
    written, for the worker's answer to each."""

    def __init__(self, client: KafkaClientConfig, routes: list[PolicyRoute]) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.expected = {route.site_id: route.revision for route in routes}
        self.consumer = Consumer(
            client.confluent_config(
                {"group.id": f"chuteflow-route-{uuid.uuid4().hex}", "enable.auto.commit": False}
            )
        )
        assignment = []
        for topic in (DECISIONS_AUDIT.name, DEAD_LETTER.name):
            for number in sorted({site_partition(site) for site in self.expected}):
                where = TopicPartition(topic, number)
                _, high = self.consumer.get_watermark_offsets(where, timeout=10.0)
                assignment.append(TopicPartition(topic, number, high))
        self.consumer.assign(assignment)

    def close(self) -> None:
        self.consumer.close()

    def wait(self, timeout_s: float) -> dict[str, str]:
        answers: dict[str, str] = {}
        deadline = time.monotonic() + timeout_s
        try:
            while len(answers) < len(self.expected) and time.monotonic() < deadline:
                message = self.consumer.poll(0.2)
                if message is None or message.error() is not None:
                    continue
                answer = self._answer(message.topic(), message.key(), message.value() or b"")
                if answer is not None:
                    answers.setdefault(*answer)
        finally:
            self.close()
        for site in self.expected:
            answers.setdefault(site, f"not applied within {timeout_s:g} s")
        return answers

    def _answer(self, topic: str | None, key: bytes | None, value: bytes) -> tuple[str, str] | None:
        try:
            body = json.loads(value)
        except ValueError:
            return None
        if topic == DECISIONS_AUDIT.name:
            site = body.get("site_id")
            if body.get("kind") == "route_received" and body.get("revision") == self.expected.get(
                site
            ):
                return str(site), f"applied by {body.get('worker')}"
            return None
        reason = str(body.get("reason", ""))
        for site, revision in self.expected.items():
            if key == message_key(site) and reason.startswith(
                f"policy_refused: route revision {revision}:"
            ):
                return site, f"refused: {reason}"
        return None


__all__ = [
    "RoutingError",
    "new_route",
    "publish_routes",
    "read_routes",
    "route_records",
    "servable_ref",
    "worker_default_routes",
]
