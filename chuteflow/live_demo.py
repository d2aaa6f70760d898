"""The main job's live part: the Kafka path with a policy in shadow, on an embedded broker.

An embedded Apache Kafka (``localkafka``) starts on a free port; the shipped DRMARL is
registered in the policy store and routed to run in shadow while proportional serves; a worker
process serves the site; the spike day is replayed at full speed in a closed loop; an
independent WCS-style consumer prints the first allocations as they arrive; and the shadow
report compares both policies' counterfactual days with what the floor reported.
"""

from __future__ import annotations

import tempfile
import threading
import uuid
from pathlib import Path

from contracts.codec import decode
from contracts.control import PolicyRef
from contracts.events import AllocationDecided
from contracts.topics import ALLOCATIONS
from decision.artifacts import inspect_artifact
from evaluation.demo import SHIPPED_POLICIES
from localkafka import temporary_broker
from replay.loop import replay_day
from replay.workers import start_worker, stop_worker
from rollout.observe import read_site_day
from rollout.plots import shadow_plot
from rollout.shadow import compare, format_table
from stream.admin import ensure_topics
from stream.clients import KafkaClientConfig
from stream.policy_store import ArtifactFetcher, register_policy
from stream.routing import new_route, publish_routes
from twin.spike import spike_day

SHOWN = 3
"""Allocations the WCS-style consumer prints."""


class WcsConsumer(threading.Thread):
    """What a WCS would run: a subscriber to the allocation topic, printing the first few."""

    def __init__(self, client: KafkaClientConfig, site_id: str) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        self.site_id = site_id
        self.received = 0
        self.stop = threading.Event()
        self.consumer = Consumer(
            client.confluent_config(
                {
                    "group.id": f"demo-wcs-{uuid.uuid4().hex[:8]}",
                    "auto.offset.reset": "latest",
                    "enable.auto.commit": False,
                }
            )
        )
        self.consumer.subscribe([ALLOCATIONS.name])
        self.ready = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            message = self.consumer.poll(0.2)
            if self.consumer.assignment():
                self.ready.set()
            if message is None or message.error() is not None:
                continue
            event = decode(message.value() or b"")
            if not isinstance(event, AllocationDecided) or event.site_id != self.site_id:
                continue
            self.received += 1
            if self.received <= SHOWN:
                top = sorted(event.chutes_per_destination.items(), key=lambda kv: -kv[1])[:3]
                held = ", ".join(f"{d}: {n}" for d, n in top)
                print(
                    f"  WCS got interval {event.interval_index} from {event.policy_name} "
                    f"({len(event.chute_map)} chutes mapped; most: {held})",
                    flush=True,
                )
        self.consumer.close()


def run_live_demo(out: Path, seed: int, scenario_name: str = "large") -> None:
    scenario, group, demand, _ = spike_day(scenario_name, seed)
    shipped = SHIPPED_POLICIES / f"drmarl-{scenario_name}.onnx"
    print(f"\nlive: embedded Kafka, proportional serving {scenario.site_id}, DRMARL in shadow")
    with temporary_broker() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        client = KafkaClientConfig(bootstrap)
        ensure_topics(client)
        data = shipped.read_bytes()
        record, _ = register_policy(client, "drmarl", inspect_artifact(data), data)
        shadow = PolicyRef(name=record.name, sha256=record.sha256)
        route = new_route(
            None,
            scenario.site_id,
            serving=PolicyRef(name="proportional"),
            shadows=[shadow],
            action="route",
            reason="demo",
        )
        publish_routes(client, [route])
        print(f"  registered {shadow.label}; route revision {route.revision} published")
        worker = start_worker(client, [scenario_name], Path(tmp), app_id="demo-worker")
        wcs = WcsConsumer(client, scenario.site_id)
        wcs.start()
        wcs.ready.wait(30)
        try:
            result = replay_day(demand, seed, client, group)
        finally:
            wcs.stop.set()
            wcs.join(10)
            stop_worker(worker)
        print(
            f"  replayed {result.events_published:,} events in {result.wall_seconds:.1f} s; "
            f"the WCS received {wcs.received} allocations"
        )
        day = read_site_day(client, scenario)
        report = compare(scenario, day, ArtifactFetcher(client))
        print(format_table(report))
        plot = shadow_plot(scenario, report, out / "shadow_report.png")
        print(f"plot: {plot}")


__all__ = ["WcsConsumer", "run_live_demo"]
