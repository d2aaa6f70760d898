"""Routes on the control topic, in memory: hot swap at the next boundary, shadows, refusals,
restarts; and the engine's fallback within the interval."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from contracts.codec import decode, encode
from contracts.control import PolicyRef, PolicyRoute
from contracts.events import AllocationDecided, DayStarted, Envelope
from contracts.topics import ALLOCATIONS, CONTROL, DEAD_LETTER, SHADOW, message_key
from decision.artifacts import PolicyArtifact, sha256_hex
from decision.build import build_engine
from decision.features import ObservationBatch
from decision.state import SiteState
from floor.daytypes import default_groups
from floor.plan import DayPlan
from floor.scenario import Scenario, load_scenario
from floor.site import load_site
from replay.loop import day_type_group, owner_of
from replay.publisher import MemoryPublisher
from stream.deadletter import original_value
from stream.policy_store import PolicyStoreError
from stream.processor import StreamProcessor
from stream.worker import make_site
from twin.groups import sample_day
from twin.sim import SortationTwin

SHIPPED = Path(__file__).resolve().parents[2] / "decision" / "policies" / "drmarl-small.onnx"
DATA = SHIPPED.read_bytes()
DRMARL = PolicyRef(name="drmarl-small", sha256=sha256_hex(DATA))


def fetch(ref: PolicyRef) -> PolicyArtifact:
    if ref.sha256 != DRMARL.sha256:
        raise PolicyStoreError(f"policy {ref.label}: not in the policy store")
    return PolicyArtifact(ref.name, ref.sha256, DATA, ("small",))


def route(revision: int, serving: PolicyRef, *shadows: PolicyRef, **extra: object) -> PolicyRoute:
    return PolicyRoute.model_validate(
        {
            "event_id": f"r-{uuid.uuid4().hex}",
            "event_time": datetime.now(UTC),
            "site_id": "site-small",
            "revision": revision,
            "serving": serving,
            "shadows": list(shadows),
            "action": "route",
            **extra,
        }
    )


class Loop:
    """The worker's processor in a closed loop with the twin, records with real offsets."""

    def __init__(self, scenario: Scenario, processor: StreamProcessor, seed: int = 3) -> None:
        self.scenario = scenario
        self.processor = processor
        groups = default_groups(scenario)
        self.demand = sample_day(groups, 2, scenario, seed=seed)
        self.publisher = MemoryPublisher()
        self.twin = SortationTwin(scenario, self.demand, seed=seed, emit=self.publisher.publish)
        self.offsets: Counter[str] = Counter()
        self.allocations: list[AllocationDecided] = []
        self.shadow: list[AllocationDecided] = []
        self.dead: list[str] = []
        start = DayStarted(
            event_id="day",
            event_time=self.demand.day_start,
            site_id=scenario.site_id,
            day_start=self.demand.day_start,
            day_type_group=day_type_group(groups, self.demand),
        )
        self.publisher.publish(start)
        self.flush()

    def send(self, topic: str, value: bytes) -> None:
        offset = self.offsets[topic]
        self.offsets[topic] += 1
        key = message_key(self.scenario.site_id)
        for record in self.processor.handle(topic, key, value, 0, offset):
            if record.topic == ALLOCATIONS.name:
                event = decode(record.value)
                assert isinstance(event, AllocationDecided)
                self.allocations.append(event)
            elif record.topic == SHADOW.name:
                event = decode(record.value)
                assert isinstance(event, AllocationDecided)
                self.shadow.append(event)
            elif record.topic == DEAD_LETTER.name:
                self.dead.append(original_value(record.value)[0])

    def flush(self) -> None:
        records, self.publisher.records = self.publisher.records, []
        for topic, _key, value in records:
            self.send(topic, value)

    def control(self, routed: PolicyRoute) -> None:
        self.send(CONTROL.name, encode(routed))

    def interval(self) -> None:
        self.twin.run_interval(owner_of(self.scenario, self.allocations[-1]))
        self.flush()


def _loop(seed: int = 3) -> Loop:
    scenario = load_scenario("small")
    site = make_site(scenario, "proportional", None, fetch=fetch)
    return Loop(scenario, StreamProcessor({scenario.site_id: site}), seed)


def test_a_route_swaps_the_policy_at_the_next_boundary_and_shadows_never_serve() -> None:
    loop = _loop()
    for _ in range(3):
        loop.interval()
    assert len(loop.allocations) == 4  # intervals 0..3 decided
    loop.control(route(1, PolicyRef(name="static"), DRMARL))
    for _ in range(3):
        loop.interval()
    names = [(a.interval_index, a.policy_name, a.route_revision) for a in loop.allocations]
    assert names[:4] == [(k, "proportional", 0) for k in range(4)]
    assert names[4:] == [(k, "static", 1) for k in range(4, 7)]
    # the shadow decides every interval from the swap on, on the shadow topic only
    assert [s.interval_index for s in loop.shadow] == [4, 5, 6]
    assert all(s.policy_sha256 == DRMARL.sha256 for s in loop.shadow)
    assert all(a.policy_name != "drmarl-small" for a in loop.allocations)
    # a redelivered or older route is ignored, not applied twice or dead-lettered
    loop.control(route(1, PolicyRef(name="proportional")))
    loop.interval()
    assert loop.allocations[-1].policy_name == "static" and not loop.dead
    assert loop.processor.stats["routes_stale"] == 1


def test_a_route_naming_an_unknown_version_is_refused_and_the_site_keeps_serving() -> None:
    loop = _loop()
    loop.control(route(1, PolicyRef(name="static")))
    ghost = PolicyRef(name="ghost", sha256="0" * 64)
    loop.control(route(2, ghost))
    loop.send(CONTROL.name, b'{"event_type": "policy_route"}')
    loop.interval()
    assert [d.split(":")[0] for d in loop.dead] == ["policy_refused", "decode"]
    assert "not in the policy store" in loop.dead[0]
    assert loop.allocations[-1].policy_name == "static"
    assert loop.allocations[-1].route_revision == 1


def test_a_restarted_worker_keeps_the_route_and_decides_as_before() -> None:
    loop = _loop()
    loop.interval()
    loop.control(route(1, DRMARL, PolicyRef(name="static")))
    for _ in range(3):
        loop.interval()
    scenario = loop.scenario
    snapshot = loop.processor.sites[scenario.site_id].snapshot()
    restarted = make_site(scenario, "proportional", None, fetch=fetch)
    restarted.restore(snapshot)
    other = StreamProcessor({scenario.site_id: restarted})
    # the next interval's records reach both the running and the restored worker
    loop.twin.run_interval(owner_of(scenario, loop.allocations[-1]))
    records = list(loop.publisher.records)
    offsets = Counter(loop.offsets)
    before = len(loop.allocations)
    loop.flush()
    outputs = []
    for topic, key, value in records:
        outputs += other.handle(topic, key, value, 0, offsets[topic])
        offsets[topic] += 1
    again = [decode(r.value) for r in outputs if r.topic == ALLOCATIONS.name]
    assert again == loop.allocations[before:] and len(again) == 1
    assert loop.allocations[-1].policy_sha256 == DRMARL.sha256
    assert restarted.route is not None and restarted.route.revision == 1
    assert [ref.name for ref, _ in restarted.shadows()] == ["static"]


class _Slow:
    name, version = "slow", "1"

    def __init__(self, seconds: float, levels: int) -> None:
        self.seconds, self.levels = seconds, levels

    def start_day(self, plan: DayPlan) -> None:
        return None

    def values(self, state: SiteState, observations: ObservationBatch) -> np.ndarray:
        time.sleep(self.seconds)
        return np.zeros((state.n_destinations, self.levels))


class _Nan(_Slow):
    name = "nan"

    def values(self, state: SiteState, observations: ObservationBatch) -> np.ndarray:
        return np.full((state.n_destinations, self.levels), np.nan)


@pytest.mark.parametrize(
    ("policy", "reason"),
    [(_Slow(0.5, 0), "DeadlineMissed"), (_Nan(0, 0), "NaN")],
    ids=["deadline", "nan"],
)
def test_the_fallback_decides_an_interval_whose_policy_fails_and_the_allocation_says_so(
    policy: _Slow, reason: str
) -> None:
    scenario = load_scenario("small")
    site = load_site(scenario)
    policy.levels = site.physics.max_chutes_per_destination + 1
    engine = build_engine(site, policy, fallback="proportional", deadline_s=0.1)
    reference = build_engine(site, "proportional")
    groups = default_groups(scenario)
    demand = sample_day(groups, 1, scenario, seed=5)
    plan = DayPlan(expected_share=demand.expected_share, day="d")
    engine.start_day(plan)
    reference.start_day(plan)
    twin = SortationTwin(scenario, demand, seed=5)
    state = twin.site_state()
    start = demand.day_start
    t0 = time.perf_counter()
    decision = engine.decide(state, start, start)
    assert time.perf_counter() - t0 < 0.45  # never waits for a hung policy
    expected = reference.decide(state, start, start)
    event: Envelope = decision.event
    assert isinstance(event, AllocationDecided)
    assert event.policy_name == "proportional" and event.fallback_from == f"{policy.name}@1"
    assert event.fallback_reason is not None and reason in event.fallback_reason
    assert event.decision_id.endswith(f"/{policy.name}@1")  # a redelivery keeps its id
    assert event.chute_map == expected.event.chute_map
