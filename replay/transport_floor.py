"""The worker's own transport floor: the raw floor's records read through the worker's faust
app and consumer (:class:`stream.batching.BatchConsumer` on aiokafka), each decoded, nothing
else done.

Why: ``bench replay`` compares the lockstep replay with a raw librdkafka consumer that decodes
each record. The gap between the two is the worker's transport (faust + aiokafka in Python)
plus what the worker does per record (its checks, duplicate window, tracker) plus the closed
loop's waits. This floor measures the first part alone, on the same records in the same run,
so the bench can say how much of the ratio the transport fixed by the design card
(faust-streaming) costs before the worker does any work of its own.

The consumer is a faust app made by :func:`stream.app.make_app` (the worker's settings: batch
consumer, fetch sizes, commit interval) in a fresh consumer group, run as a faust worker in a
child process, so it pays faust's event loop, aiokafka's consumer thread and the hand-offs
between them exactly as ``chuteflow worker`` does. Its handler decodes every record of a batch
with :func:`contracts.codec.decode` against the record's original topic, as the raw floor and
the worker do, and reports when the last one is decoded.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from contracts.topics import TopicSpec
    from stream.clients import KafkaClientConfig


def consume(
    client: KafkaClientConfig,
    topics: list[tuple[str, TopicSpec]],
    expected: int,
    pipe: Connection,
) -> None:  # pragma: no cover - runs in the bench's child process against Kafka
    """Run a faust worker over ``topics`` (``(original name, copy spec)``) until ``expected``
    records are decoded. Sends ``"ready"`` once its partitions are assigned (the producer
    starts then), then ``{"finished": monotonic, "cpu_s": process CPU since ready}`` or
    ``{"error": ...}``. The parent stops the process; nothing here exits on its own."""
    try:
        _serve(client, topics, expected, pipe)
    except BaseException as error:  # a faust start-up failure must reach the parent as a line
        if not isinstance(error, SystemExit):
            pipe.send({"error": f"{type(error).__name__}: {error}"})
        raise


def _serve(
    client: KafkaClientConfig, topics: list[tuple[str, TopicSpec]], expected: int, pipe: Connection
) -> None:  # pragma: no cover - runs in the bench's child process against Kafka
    import logging

    import faust

    # faust's worker draws a spinner on stdout; the bench prints its JSON there
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)

    from contracts.codec import decode
    from stream.app import AppSettings, make_app
    from stream.batching import set_batch_handler
    from stream.inputs import BY_NAME

    logging.basicConfig(level=logging.WARNING)
    app = make_app(
        AppSettings(
            client.bootstrap,
            app_id=f"chuteflow-transport-floor-{uuid.uuid4().hex[:8]}",
            offset_reset="earliest",
            client=client,
        )
    )
    original = {spec.name: BY_NAME[name] for name, spec in topics}
    source = app.topic(
        *original,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    state: dict[str, Any] = {"seen": 0, "cpu0": None, "reported": False}

    def cpu_now() -> float:
        t = os.times()
        return t.user + t.system

    async def handle(batch: list[Any]) -> None:
        for message in batch:
            decode(message.value or b"", original[message.topic])
        state["seen"] += len(batch)
        if state["seen"] >= expected and not state["reported"]:
            state["reported"] = True
            pipe.send({"finished": time.monotonic(), "cpu_s": cpu_now() - state["cpu0"]})

    if not set_batch_handler(app, original, handle):
        raise RuntimeError("the worker's batch consumer is not installed on the app")

    @app.agent(source, name="transport-floor")
    async def sink(stream: Any) -> None:  # subscribes the topics; batches bypass it
        async for event in stream:
            await handle([event.message])

    async def ready(sender: Any, **kwargs: Any) -> None:
        if state["cpu0"] is None and app.consumer.assignment():
            state["cpu0"] = cpu_now()
            pipe.send("ready")

    app.on_rebalance_complete.connect(ready)  # type: ignore[arg-type]
    faust.Worker(app, quiet=True, loglevel="WARNING").execute_from_commandline()


__all__ = ["consume"]
