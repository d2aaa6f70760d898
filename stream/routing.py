"""The control topic's I/O: read every site's current route, write a new one.

The route model and its rules are in ``contracts/control.py``. A new route always carries the
site's current revision + 1 (read from the topic just before), so a worker that sees an older
revision after a newer one (a redelivery) ignores it; two operators racing on one site get
the same revision and the second record is ignored by the workers as stale (``policy routes``
shows which one holds).
"""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime
from typing import Any

from contracts.codec import DecodeError, decode_route, encode
from contracts.control import PolicyRoute
from contracts.topics import CONTROL, message_key
from floor.errors import ChuteflowError
from stream.clients import KafkaClientConfig, as_client
from stream.topic_reader import read_to_end, site_partition


class RoutingError(ChuteflowError):
    """A route could not be written; one line."""


def read_routes(
    bootstrap: str | KafkaClientConfig, *, timeout_s: float = 30.0
) -> dict[str, PolicyRoute]:
    """Every site's current route (highest revision), read from the control topic."""
    routes: dict[str, PolicyRoute] = {}
    for record in read_to_end(bootstrap, [CONTROL.name], timeout_s=timeout_s):
        if record.value is None:
            continue
        try:
            route = decode_route(record.value)
        except DecodeError:
            continue  # the worker dead-letters it; a reader skips it
        if record.key != message_key(route.site_id):
            continue
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
    bootstrap: str | KafkaClientConfig, routes: list[PolicyRoute], *, timeout_s: float = 30.0
) -> None:
    """Write ``routes`` (each on its site's partition) and wait until the broker has them."""
    from confluent_kafka import KafkaException, Producer

    client = as_client(bootstrap)
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(error.str())

    producer = Producer(
        client.confluent_config({"enable.idempotence": True, "acks": "all", "log_level": 0})
    )
    try:
        for route in routes:
            producer.produce(
                CONTROL.name,
                key=message_key(route.site_id),
                value=encode(route),
                partition=site_partition(route.site_id, CONTROL.partitions),
                on_delivery=delivered,
            )
    except (KafkaException, BufferError) as error:
        raise RoutingError(f"writing {CONTROL.name}: {error}") from None
    left = producer.flush(timeout_s)
    if failures or left:
        reason = failures[0] if failures else f"not delivered within {timeout_s:g} s"
        raise RoutingError(f"writing {CONTROL.name}: {reason}")


__all__ = ["RoutingError", "new_route", "publish_routes", "read_routes"]
