"""The canary gate's Kafka side: one long-lived consumer over every partition of the floor
topics, the intervals, allocations and control topics, each record decoded once into
:class:`rollout.gate.GateState`; each verdict written the moment its check is made.

Why a separate process and one consumer: see ``rollout/gate.py``. The consumer is assigned
(no group, nothing committed) every partition, not the one a site's key maps to, so records a
producer wrote with another partitioner still count. It starts at the first record of the
current day run of the watched sites (Kafka time of their latest ``day_started``), so a
watcher started mid-day rebuilds the day once and then only follows it; ``policy canary``
starts the watcher and lets it catch up *before* it writes the canary route, so the gate is
current when the candidate serves its first interval.

Faults. A broker that goes away is waited for: librdkafka reconnects and the consumer resumes
at the positions it had (nothing is re-read, no state is lost); a verdict that cannot be
written is retried with backoff. Only when the broker has been unreachable for longer than
``outage_limit_s`` does the watcher give up, with one line and its own exit code
(:data:`EXIT_LOST`), leaving the canary open for ``policy gate`` to pick up.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from contracts.codec import DecodeError, decode, decode_route, encode
from contracts.control import CanaryCheck, PolicyRef, PolicyRoute
from contracts.events import DayStarted
from contracts.topics import (
    ALLOCATIONS,
    CANARY,
    CHUTE_STATE,
    CONTROL,
    INDUCTIONS,
    INTERVALS,
    SORTATION,
    TopicSpec,
    message_key,
)
from floor.errors import ChuteflowError
from floor.scenario import Scenario
from rollout.canary import GateVerdict
from rollout.exits import EXIT_ENDED, EXIT_FAILED, EXIT_LOST, EXIT_PASSED, EXIT_TIMEOUT
from rollout.gate import GateState, Verdict
from rollout.shadow import SHADOW_SEEDS, Fetch
from stream.clients import KafkaClientConfig, as_client
from stream.topic_reader import missing_topic, read_to_end, site_partition

_SORTED = b'"event_type":"package_sorted"'
"""How the contract codec writes a sorted package's type: counted, not decoded (most records)."""
_STREAMS: tuple[TopicSpec, ...] = (INDUCTIONS, SORTATION, CHUTE_STATE, INTERVALS, ALLOCATIONS)


class WatcherLost(ChuteflowError):
    """The watcher cannot continue (the broker was unreachable for too long); one line."""


@dataclass
class WatchResult:
    """How a watch ended: its exit code, a one-line summary and the verdicts per site."""

    code: int
    message: str
    verdicts: dict[str, GateVerdict] = field(default_factory=dict)


def _day_starts(client: KafkaClientConfig, sites: set[str], timeout_s: float) -> int | None:
    """Kafka time of the earliest of the sites' latest ``day_started`` records (None: none)."""
    latest: dict[str, int] = {}
    for record in read_to_end(client, [INTERVALS.name], timeout_s=timeout_s):
        if record.value is None or record.key is None:
            continue
        if record.key.decode("utf-8", "replace") not in sites:
            continue
        try:
            event = decode(record.value, INTERVALS)
        except DecodeError:
            continue
        if isinstance(event, DayStarted) and event.site_id in sites:
            latest[event.site_id] = max(latest.get(event.site_id, 0), record.timestamp_ms)
    return min(latest.values()) if latest else None


class GateWatcher:
    """A :class:`GateState` kept current from Kafka, its verdicts written back."""

    def __init__(
        self,
        client: str | KafkaClientConfig,
        scenarios: Mapping[str, Scenario],
        fetch: Fetch,
        *,
        seeds: int = SHADOW_SEEDS,
        stall_s: float = 10.0,
        outage_limit_s: float = 300.0,
        report: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.client = as_client(client)
        self.state = GateState(scenarios, fetch, seeds=seeds, stall_s=stall_s)
        self.outage_limit_s = outage_limit_s
        self.report = report
        self._keys = {message_key(site) for site in scenarios}
        self._consumer: Any = None
        self._producer: Any = None
        self._admin: Any = None
        self._unsent: list[tuple[str, bytes, bytes, int]] = []
        self._failures: list[tuple[str, bytes, bytes, int]] = []
        self._last_contact = time.monotonic()
        self._positions: dict[tuple[str, int], int] = {}
        """Offset of the last record consumed, per (topic, partition)."""
        self.checks: list[CanaryCheck] = []
        """Every check record this watcher published, in order."""
        self.since_close_ms: list[float] = []
        """Per check made (in order), wall-clock ms from when the worker wrote the interval's
        close (its record's Kafka timestamp) to when the check record was handed to the
        producer; ``CanaryCheck.latency_ms`` counts only from when this process read it."""

    # -------------------------------------------------------------- start

    def start(
        self, timeout_s: float = 60.0, *, prepare: Mapping[str, PolicyRef] | None = None
    ) -> None:
        """Assign every partition, from the current day runs on, and catch up to the end.

        ``prepare``: per site, the incumbent of a canary about to open. Its twin is built and
        the day so far replayed here, during the catch-up (seconds on a large site mid-day),
        and kept current from then on, so once the canary route is out a check is only its
        interval's step: nothing replays the day between a close and its verdict."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
        from confluent_kafka.admin import AdminClient

        from stream.admin import ensure_topics

        ensure_topics(self.client, [CANARY], timeout=min(timeout_s, 30.0))
        since = _day_starts(self.client, set(self.state.scenarios), timeout_s)
        if since is None:
            since = int(time.time() * 1000) - 60_000
        self._consumer = Consumer(
            self.client.confluent_config(
                {
                    "group.id": f"chuteflow-gate-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "fetch.wait.max.ms": 50,
                    "log_level": 0,
                }
            )
        )
        self._producer = Producer(
            self.client.confluent_config(
                {
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 0,
                    "message.timeout.ms": int(max(self.outage_limit_s, 10.0) * 1000),
                    "log_level": 0,
                }
            )
        )
        self._admin = AdminClient(self.client.confluent_config({"log_level": 0}))
        metadata = self._consumer.list_topics(timeout=min(timeout_s, 10.0))
        query: list[Any] = []
        assign: list[Any] = []
        for spec in _STREAMS:
            meta = metadata.topics.get(spec.name)
            if meta is None or meta.error is not None:
                raise ChuteflowError(missing_topic(spec.name, self.client.bootstrap))
            query += [TopicPartition(spec.name, p, since) for p in sorted(meta.partitions)]
        for found in self._consumer.offsets_for_times(query, timeout=min(timeout_s, 10.0)):
            assign.append(found)  # -1 (nothing since): from the end
        control = metadata.topics.get(CONTROL.name)
        if control is None:
            raise ChuteflowError(missing_topic(CONTROL.name, self.client.bootstrap))
        assign += [
            TopicPartition(CONTROL.name, p, OFFSET_BEGINNING) for p in sorted(control.partitions)
        ]
        assigned = [(tp.topic, tp.partition) for tp in assign]
        lows = self._offsets(assigned, "earliest", timeout_s)
        highs = self._offsets(assigned, "latest", timeout_s)
        for tp in assign:
            if tp.offset == -1:  # offsets_for_times: nothing since the day run started
                tp.offset = highs[(tp.topic, tp.partition)]
            elif tp.offset == OFFSET_BEGINNING:
                tp.offset = lows[(tp.topic, tp.partition)]
            self._positions[(tp.topic, tp.partition)] = tp.offset - 1
        self._consumer.assign(assign)
        for site, incumbent in (prepare or {}).items():
            self.state.prepare(site, incumbent)  # no day read yet: built as the day is
        deadline = time.monotonic() + timeout_s
        # Rounds until one takes under half a second: a floor that goes on while the watcher
        # reads its day is followed until the watcher is current, before the caller writes the
        # canary route (a watcher behind the floor would check late).
        self.state.replaying = True  # canaries that ended before now were not this watch's
        try:
            for _ in range(20):
                ends = self._ends(timeout_s)
                started = time.monotonic()
                while ends:
                    if time.monotonic() > deadline:
                        raise WatcherLost(
                            f"the gate could not catch up with the stream in {timeout_s:g} s"
                        )
                    for where, offset in self._poll(0.05):
                        if offset >= ends.get(where, 2**62) - 1:
                            ends.pop(where, None)
                self._act()  # the prepared twins replay the day so far: counted in the round
                if time.monotonic() - started < 0.5:  # the reading itself, not the end queries
                    break
        finally:
            self.state.replaying = False

    def _ends(self, timeout_s: float) -> dict[tuple[str, int], int]:
        """End offsets of the assigned partitions that are not read to their end yet.

        One batched ListOffsets request, not a watermark query per partition: those cost ~20 ms
        each, ~0.7 s a catch-up round over the six topics, while the floor goes on."""
        highs = self._offsets(list(self._positions), "latest", timeout_s)
        return {w: high for w, high in highs.items() if high - 1 > self._positions[w]}

    def _offsets(
        self, where: list[tuple[str, int]], which: str, timeout_s: float
    ) -> dict[tuple[str, int], int]:
        """The earliest or latest (committed-read) offset of each partition, in one request."""
        from confluent_kafka import IsolationLevel, TopicPartition
        from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

        spec: Any = getattr(OffsetSpec, which)()  # untyped in confluent-kafka's stubs
        futures = self._admin.list_offsets(
            {TopicPartition(t, p): spec for t, p in where},
            isolation_level=IsolationLevel.READ_COMMITTED,  # what the consumer reads up to
            request_timeout=min(timeout_s, 10.0),
        )
        return {(tp.topic, tp.partition): int(f.result().offset) for tp, f in futures.items()}

    # -------------------------------------------------------------- the loop

    def _poll(self, timeout_s: float) -> list[tuple[tuple[str, int], int]]:
        """Consume what is there, into the state; (topic, partition), offset of each record."""
        from confluent_kafka import KafkaError

        seen: list[tuple[tuple[str, int], int]] = []
        for message in self._consumer.consume(5_000, timeout_s):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self._last_contact = time.monotonic()
                continue
            self._last_contact = time.monotonic()
            topic = str(message.topic())
            where = (topic, int(message.partition() or 0))
            offset = int(message.offset() or 0)
            seen.append((where, offset))
            self._positions[where] = offset
            key, value = message.key(), message.value()
            if key not in self._keys or value is None:
                continue
            if topic == CONTROL.name:
                try:
                    route = decode_route(value)
                except DecodeError:
                    continue
                if message_key(route.site_id) == key:
                    for check in self.state.route(route):
                        self._send_check(check)
                continue
            if topic == SORTATION.name and _SORTED in value:
                self.state.sorted_record(topic, message.timestamp()[1], key.decode())
                continue
            try:
                event = decode(value)
            except DecodeError:
                continue  # the worker dead-letters it; not part of the day
            if message_key(event.site_id) == key:
                self.state.record(topic, message.timestamp()[1], event)
        return seen

    def _send(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        from confluent_kafka import KafkaException

        def delivered(error: Any, _message: Any) -> None:
            if error is not None:
                self._failures.append((topic, key, value, partition))

        try:
            self._producer.produce(
                topic, key=key, value=value, partition=partition, on_delivery=delivered
            )
        except (KafkaException, BufferError):
            self._unsent.append((topic, key, value, partition))

    def _send_check(self, check: CanaryCheck) -> None:
        self.checks.append(check)
        site = check.site_id
        self._send(
            CANARY.name, message_key(site), encode(check), site_partition(site, CANARY.partitions)
        )
        self.report(_describe(check))

    def _act(self) -> None:
        """Check what is ready; write each verdict's routes first, then its check record."""
        verdicts: list[Verdict] = self.state.ready()
        for verdict in verdicts:
            for route in verdict.routes:
                self._send_route(route)
            if verdict.routes:
                self._producer.flush(1.0)  # the route first, on its way before anything else
            self._send_check(verdict.check)
            if verdict.close_timestamp_ms is not None:
                self.since_close_ms.append(time.time() * 1000.0 - verdict.close_timestamp_ms)
        self._producer.poll(0)
        self._retry()

    def _send_route(self, route: PolicyRoute) -> None:
        partition = site_partition(route.site_id, CONTROL.partitions)
        self._send(CONTROL.name, message_key(route.site_id), encode(route), partition)

    def _retry(self) -> None:
        again, self._unsent = self._unsent + self._failures, []
        self._failures = []
        for record in again:
            self._send(*record)

    def _control_ends(self) -> dict[tuple[str, int], int] | None:
        """The control topic's end now, per non-empty partition: a watch does not conclude
        "no canary open" before it has read the routes written so far (the one ``policy
        canary`` just wrote included). None while the broker does not answer (asked again on
        the next turn of the loop, which waits for the broker)."""
        from confluent_kafka import KafkaException, TopicPartition

        ends = {}
        try:
            metadata = self._consumer.list_topics(CONTROL.name, timeout=2.0)
            for number in sorted(metadata.topics[CONTROL.name].partitions):
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(CONTROL.name, number), timeout=2.0
                )
                if high > low:
                    ends[(CONTROL.name, number)] = high
        except KafkaException:
            return None
        return ends

    def keep_up_while(self, busy: Callable[[], bool]) -> None:
        """Follow the stream while ``busy()`` (the caller writing its canary routes and waiting
        for the worker's answer), so the gate is as current when they apply as it was before."""
        while busy():
            self._poll(0.02)
            self._act()

    def _healthy(self) -> bool:
        """The broker answered recently, or answers a metadata request now."""
        from confluent_kafka import KafkaException

        if time.monotonic() - self._last_contact < 2.0:
            return True
        try:
            self._consumer.list_topics(CONTROL.name, timeout=1.0)
        except KafkaException:
            return False
        self._last_contact = time.monotonic()
        return True

    def run(
        self,
        sites: set[str] | None = None,
        *,
        timeout_s: float = 3600.0,
        follow: bool = False,
    ) -> WatchResult:
        """Watch until every canary of ``sites`` (default: every watched site) has ended
        (unless ``follow``: until ``timeout_s``)."""
        if self._consumer is None:
            self.start()
        deadline = time.monotonic() + timeout_s
        lost_since: float | None = None
        backoff = 0.5
        control = self._control_ends()
        try:
            while True:
                self._poll(0.02)  # short: a check waits for no fetch beyond its interval's
                self._act()
                # before any return: a broker that came back (records were just read, or a
                # verdict made from them) is reported as back whatever ends the watch next
                healthy = self._healthy()
                if healthy and lost_since is not None:
                    self.report(
                        f"broker reachable again after {time.monotonic() - lost_since:.0f} s"
                    )
                    lost_since, backoff = None, 0.5
                if control is None:
                    control = self._control_ends()
                if control is None:
                    pass  # the routes written so far are not known yet
                elif control:
                    control = {
                        w: end for w, end in control.items() if self._positions.get(w, -1) < end - 1
                    }
                elif not follow and not self.state.watching(sites):
                    return self._result(sites)
                if not healthy:
                    if lost_since is None:
                        lost_since = time.monotonic()
                        self.report("broker unreachable: waiting for it (the canary stays open)")
                    if time.monotonic() - lost_since > self.outage_limit_s:
                        open_ = ", ".join(sorted(self.state.watching(sites))) or "none"
                        return WatchResult(
                            EXIT_LOST,
                            f"gate watcher lost the broker at {self.client.bootstrap} for more "
                            f"than {self.outage_limit_s:g} s; canaries still open on {open_}: "
                            "run `chuteflow policy gate` to resume",
                            dict(self.state.ended),
                        )
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                if time.monotonic() > deadline:
                    if follow:
                        return self._result(sites)
                    open_ = ", ".join(sorted(self.state.watching(sites)))
                    return WatchResult(
                        EXIT_TIMEOUT,
                        f"gate still open on {open_} after {timeout_s:g} s: run "
                        "`chuteflow policy gate` to keep watching",
                        dict(self.state.ended),
                    )
        finally:
            self.close()

    def _result(self, sites: set[str] | None) -> WatchResult:
        ended = {s: v for s, v in self.state.ended.items() if sites is None or s in sites}
        outcomes = {v.outcome for v in ended.values()}
        code = (
            EXIT_FAILED
            if "fail" in outcomes
            else EXIT_ENDED
            if "ended" in outcomes
            else EXIT_PASSED
        )
        summary = "; ".join(f"{s}: {v.outcome}" for s, v in sorted(ended.items()))
        return WatchResult(code, summary or "no canary open", ended)

    def close(self) -> None:
        """Deliver what is pending (briefly) and close the clients."""
        if self._producer is not None:
            self._producer.flush(10.0)
            self._producer = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self._admin = None


def _describe(check: CanaryCheck) -> str:
    if check.checks == 0:
        return f"{check.site_id}: {check.outcome}: {check.reason}"
    verdict = "" if check.outcome == "pending" else f" -> {check.outcome}"
    latency = "" if check.latency_ms is None else f" [{check.latency_ms:.0f} ms after close]"
    return (
        f"{check.site_id}: interval {check.interval}: recirculation "
        f"{100 * check.canary_rate:.2f}% vs limit {100 * check.limit:.2f}% (incumbent "
        f"{100 * check.incumbent_rate:.2f}%) {'passed' if check.passed else 'FAILED'}, "
        f"{check.failures}/{check.checks} failed{verdict}{latency}"
        + ("" if check.outcome == "pending" else f": {check.reason}")
    )


__all__ = [
    "GateWatcher",
    "WatchResult",
    "WatcherLost",
]
