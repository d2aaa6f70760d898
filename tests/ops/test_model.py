"""The operations page's model without a broker: contract records in, the page's state out.

Records are built with the contract models and encoded exactly as producers do, so the model
reads the same bytes it reads from Kafka.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.codec import encode
from contracts.control import CanaryCheck, CanaryGate, CanaryState, PolicyRef, PolicyRoute
from contracts.events import (
    AllocationDecided,
    DayStarted,
    Envelope,
    IntervalClosed,
    PackageInducted,
    PackageRecirculated,
    PackageSorted,
)
from contracts.topics import (
    ALLOCATIONS,
    CANARY,
    CONTROL,
    DEAD_LETTER,
    INDUCTIONS,
    INTERVALS,
    SHADOW,
    SORTATION,
)
from ops.model import OpsModel
from ops.page_state import snapshot
from stream.deadletter import dead_letter
from stream.topic_reader import Record

SITE = "site-ops"
DAY = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
STEP = timedelta(minutes=30)
BAD = PolicyRef(name="starve", sha256="ab" * 32)
PROP = PolicyRef(name="proportional")
STATIC = PolicyRef(name="static")


class Feed:
    """Records in Kafka order with growing offsets and timestamps, into one model."""

    def __init__(self) -> None:
        self.model = OpsModel(gate_topic=CANARY.name)
        self.offset = 0
        self.clock_ms = 1_700_000_000_000

    def send(self, topic: str, event: Envelope | bytes, key: str = SITE) -> bool:
        self.offset += 1
        self.clock_ms += 10
        value = event if isinstance(event, bytes) else encode(event)
        return self.model.apply(
            Record(topic, 0, self.offset, key.encode(), value, timestamp_ms=self.clock_ms)
        )


def _route(revision: int, serving: PolicyRef, action: Any, **fields: Any) -> PolicyRoute:
    return PolicyRoute(
        event_id=f"route-{revision}",
        event_time=DAY,
        site_id=SITE,
        revision=revision,
        serving=serving,
        action=action,
        **fields,
    )


def _day(feed: Feed, run: str = "run-1") -> str:
    started = DayStarted(
        event_id=run, event_time=DAY, site_id=SITE, day_start=DAY, day_type_group=3
    )
    assert feed.send(INTERVALS.name, started)
    return started.day_key()


def _allocation(day_key: str, k: int, policy: PolicyRef, revision: int, chutes: int) -> Any:
    chute_map = {f"c{i}": ("d1" if i < chutes else "d2") for i in range(4)}
    per = {"d1": chutes, "d2": 4 - chutes}
    return AllocationDecided(
        event_id=f"a-{day_key}-{k}-{policy.label}",
        event_time=DAY + k * STEP,
        site_id=SITE,
        decision_id=f"{SITE}/{day_key}/{k}/{policy.name}@v",
        interval_index=k,
        interval_start=DAY + k * STEP,
        chute_map=chute_map,
        chutes_per_destination={d: n for d, n in per.items() if n},
        policy_name=policy.name,
        policy_version="v",
        guardrail_version="g1",
        solver_status="optimal",
        policy_sha256=policy.sha256,
        route_revision=revision,
    )


def _floor(feed: Feed, k: int, inducted: int, recirculated: int) -> None:
    for i in range(inducted):
        when = DAY + k * STEP + timedelta(seconds=10 + i)
        feed.send(
            INDUCTIONS.name,
            PackageInducted(
                event_id=f"i-{k}-{i}",
                event_time=when,
                site_id=SITE,
                package_id=f"p{k}-{i}",
                destination="d1",
                station=0,
                attempt=1,
            ),
        )
        common: dict[str, Any] = {"event_time": when, "site_id": SITE, "package_id": f"p{k}-{i}"}
        if i < recirculated:
            event: Envelope = PackageRecirculated(
                event_id=f"r-{k}-{i}",
                destination="d1",
                attempt=1,
                reason="no_chute_allocated",
                **common,
            )
        else:
            event = PackageSorted(
                event_id=f"s-{k}-{i}", destination="d1", chute_id="c0", attempt=1, **common
            )
        feed.send(SORTATION.name, event)


def _close(feed: Feed, k: int) -> None:
    feed.send(
        INTERVALS.name,
        IntervalClosed(
            event_id=f"close-{k}",
            event_time=DAY + (k + 1) * STEP,
            site_id=SITE,
            interval_index=k,
            interval_start=DAY + k * STEP,
            interval_end=DAY + (k + 1) * STEP,
        ),
    )


def _check(k: int, rate: float, passed: bool, outcome: Any, failures: int) -> CanaryCheck:
    return CanaryCheck(
        event_id=f"check-{k}",
        event_time=DAY + (k + 1) * STEP,
        site_id=SITE,
        day_key="x",
        interval=k,
        first_interval=2,
        inducted=100 * (k - 1),
        canary_rate=rate,
        incumbent_rate=0.01,
        limit=0.013,
        passed=passed,
        failures=failures,
        checks=k - 1,
        outcome=outcome,
        candidate=BAD,
        incumbent=PROP,
        canary_revision=2,
        verdict_revision=3 if outcome == "fail" else None,
        reason="canary gate failed 2x" if outcome == "fail" else "",
    )


def test_a_day_with_a_rolled_back_canary_becomes_the_page_state() -> None:
    feed = Feed()
    feed.send(CONTROL.name, _route(1, PROP, "route", shadows=[STATIC], reason="first route"))
    day_key = _day(feed)
    gate = CanaryGate(window_intervals=4, failure_limit=2, min_inductions=10)
    for k in range(6):
        if k == 1:  # the canary opens during interval 1, serves from interval 2
            canary = CanaryState(incumbent=PROP, gate=gate, started_revision=2)
            feed.send(
                CONTROL.name,
                _route(2, BAD, "canary", shadows=[PROP, STATIC], canary=canary, reason="try it"),
            )
        if k == 4:  # rolled back after its second failing check (intervals 2 and 3)
            feed.send(
                CONTROL.name,
                _route(4 - 1, PROP, "rollback", shadows=[STATIC], reason="canary gate failed 2x"),
            )
        policy, revision = (BAD, 2) if k in (2, 3) else (PROP, 1 if k < 2 else 3)
        feed.send(ALLOCATIONS.name, _allocation(day_key, k, policy, revision, chutes=3))
        feed.send(SHADOW.name, _allocation(day_key, k, STATIC, revision, chutes=1))
        _floor(feed, k, inducted=100, recirculated=30 if policy == BAD else 2)
        _close(feed, k)
        if k in (2, 3):
            feed.send(CANARY.name, _check(k, 0.3, False, "pending" if k == 2 else "fail", k - 1))

    state = snapshot(feed.model)
    (site,) = state["sites"]
    route = site["route"]
    assert route["revision"] == 3 and route["action"] == "rollback"
    # proportional serves since the rollback (revision 3), which is when the run began
    assert route["serving"]["label"] == "proportional"
    assert route["serving"]["since_revision"] == 3 and route["serving"]["since_interval"] == 4
    assert route["serving"]["reason"] == "canary gate failed 2x"
    (shadow,) = route["shadows"]
    assert shadow["label"] == "static" and shadow["since_revision"] == 1
    assert shadow["since_interval"] == 0 and shadow["reason"] == "first route"
    assert [h["action"] for h in site["history"]] == ["route", "canary", "rollback"]

    (canary,) = site["canaries"]
    assert canary["candidate"] == BAD.label and canary["incumbent"] == "proportional"
    assert canary["ended"]["action"] == "rollback" and canary["ended"]["revision"] == 3
    assert canary["served_intervals"] == [2, 3]
    assert [(c["interval"], c["passed"], c["source"]) for c in canary["checks"]] == [
        (2, False, "gate"),
        (3, False, "gate"),
    ]
    assert canary["verdict"]["outcome"] == "fail" and canary["verdict"]["verdict_revision"] == 3
    assert canary["first_failed_interval"] == 2 and canary["served_after_first_failure"] == 1

    day = site["day"]
    assert day["day_key"] == day_key and day["closed_through"] == 5
    assert day["interval_minutes"] == 30.0
    rows = day["intervals"]
    assert [r["inducted"] for r in rows] == [100] * 6
    assert [r["recirculated"] for r in rows] == [2, 2, 30, 30, 2, 2]
    assert [r["served"] for r in rows] == ["proportional"] * 2 + [BAD.label] * 2 + [
        "proportional"
    ] * 2
    assert rows[3]["day_rate"] == (2 + 2 + 30 + 30) / 400
    assert day["rate"] == 68 / 600
    # static's shadow gives d1 one chute where the served allocation gives three: two apart
    assert all(r["shadow_moved"] == {"static": 2} for r in rows)
    assert json.loads(json.dumps(state)) == state  # the page's JSON is plain JSON


def test_without_gate_records_the_canary_shows_the_candidates_observed_side() -> None:
    feed = Feed()
    feed.send(CONTROL.name, _route(1, PROP, "route"))
    day_key = _day(feed)
    gate = CanaryGate(window_intervals=8, min_inductions=10)
    canary = CanaryState(incumbent=PROP, gate=gate, started_revision=2)
    feed.send(CONTROL.name, _route(2, BAD, "canary", shadows=[PROP], canary=canary))
    for k in range(3):
        feed.send(ALLOCATIONS.name, _allocation(day_key, k, BAD, 2, chutes=3))
        _floor(feed, k, inducted=50, recirculated=10 * (k + 1))
        _close(feed, k)
    (site,) = snapshot(feed.model)["sites"]
    assert site["route"]["canary_open"]
    (episode,) = site["canaries"]
    assert episode["ended"] is None and episode["verdict"] is None
    # cumulative since the candidate's first interval: 10/50, 30/100, 60/150
    assert [(c["interval"], c["canary_rate"], c["source"]) for c in episode["checks"]] == [
        (0, 0.2, "observed"),
        (1, 0.3, "observed"),
        (2, 0.4, "observed"),
    ]
    assert all(c["limit"] is None and c["passed"] is None for c in episode["checks"])


def test_floor_events_before_the_interval_length_is_known_are_counted_once_it_is() -> None:
    feed = Feed()
    day_key = _day(feed)
    _floor(feed, 0, inducted=5, recirculated=1)
    state = snapshot(feed.model)["sites"][0]["day"]
    assert state["interval_minutes"] is None and state["inducted"] == 0  # held, not guessed
    _close(feed, 0)
    state = snapshot(feed.model)["sites"][0]["day"]
    assert state["interval_minutes"] == 30.0
    assert (state["inducted"], state["recirculated"]) == (5, 1)
    assert day_key == state["day_key"]


def test_a_second_run_of_the_same_date_starts_a_new_day_and_old_records_stay_out() -> None:
    feed = Feed()
    first = _day(feed, "run-1")
    _close(feed, 0)
    _floor(feed, 0, inducted=7, recirculated=0)
    second = _day(feed, "run-2")
    assert first != second
    _floor(feed, 0, inducted=3, recirculated=1)
    # an allocation of the first run arriving late lands in the first run, not the second
    assert not feed.send(ALLOCATIONS.name, _allocation("unknown.00000000", 0, PROP, 1, 2))
    feed.send(ALLOCATIONS.name, _allocation(first, 1, PROP, 1, chutes=2))
    day = snapshot(feed.model)["sites"][0]["day"]
    assert day["day_key"] == second
    assert (day["inducted"], day["recirculated"]) == (3, 1)
    assert all(r["served"] is None for r in day["intervals"])
    assert feed.model.sites[SITE].days[first].served[1].policy == "proportional"


def test_redeliveries_and_foreign_keys_change_nothing() -> None:
    feed = Feed()
    route = _route(1, PROP, "route")
    assert feed.send(CONTROL.name, route)
    assert not feed.send(CONTROL.name, route)  # same event id: the same route
    day_key = _day(feed)
    allocation = _allocation(day_key, 0, PROP, 1, chutes=2)
    assert feed.send(ALLOCATIONS.name, allocation)
    assert not feed.send(ALLOCATIONS.name, allocation)
    assert not feed.send(ALLOCATIONS.name, allocation, key="another-site")
    assert not feed.send(INDUCTIONS.name, b"not json")  # the worker dead-letters it
    assert not feed.send(CONTROL.name, b'{"event_type": "policy_route"}')
    version = feed.model.version
    assert snapshot(feed.model)["version"] == version


def test_dead_letters_are_counted_by_kind_with_the_latest_first() -> None:
    feed = Feed()
    for i, reason in enumerate(
        ["decode: not JSON", "duplicate: seen", "decode: bad field", "policy_refused: rev 2"]
    ):
        letter = dead_letter(reason, topic=INDUCTIONS.name, key=SITE.encode(), value=b"x" * i)
        feed.send(DEAD_LETTER.name, letter.value)
    feed.send(DEAD_LETTER.name, b"\xff not a dead-letter body")
    dead = snapshot(feed.model)["dead_letters"]
    assert dead["by_kind"] == {"decode": 2, "duplicate": 1, "other": 1, "policy_refused": 1}
    assert dead["total"] == 5
    assert dead["recent"][1]["reason"] == "policy_refused: rev 2"
    assert dead["recent"][1]["key"] == SITE


def test_with_the_sites_day_shape_known_the_day_end_belongs_to_the_last_interval() -> None:
    """As ``rollout.observe.floor_counts`` counts: an event at exactly the day's end is in its
    last interval, one after the end in none."""
    feed = Feed()
    feed.model.day_shape[SITE] = (STEP.total_seconds(), 4)
    _day(feed)
    end = DAY + 4 * STEP
    for i, when in enumerate([DAY, end - timedelta(seconds=1), end, end + timedelta(seconds=1)]):
        feed.send(
            INDUCTIONS.name,
            PackageInducted(
                event_id=f"edge-{i}",
                event_time=when,
                site_id=SITE,
                package_id=f"edge-{i}",
                destination="d1",
                station=0,
                attempt=1,
            ),
        )
    day = snapshot(feed.model)["sites"][0]["day"]
    assert day["n_intervals"] == 4 and day["interval_minutes"] == 30.0
    assert [r["inducted"] for r in day["intervals"]] == [1, 0, 0, 2]
