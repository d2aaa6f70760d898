"""Hostile records for the fuzz run: every kind a floor, a bug or an attacker can produce.

Each generator returns ``(topic, key, value)``; none of them is a plausible *new* record (that
would not be hostile, it would be data), so the worker must dead-letter every one and the day's
KPIs must equal the clean day's.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from contracts.topics import CHUTE_STATE, INDUCTIONS, INTERVALS, SORTATION
from floor.scenario import Scenario

Record = tuple[str, bytes | None, bytes]
TOPICS = (INDUCTIONS.name, SORTATION.name, CHUTE_STATE.name, INTERVALS.name)


class Fuzzer:
    """Seeded hostile records for one site-day; ``legit`` is filled with records of the day
    seen on the topics (for duplicates and replays of old records)."""

    def __init__(self, scenario: Scenario, day_start: datetime, seed: int) -> None:
        self.rng = random.Random(seed)
        self.site = scenario.site_id
        self.key = scenario.site_id.encode()
        self.scenario = scenario
        self.day_start = day_start
        self.legit: list[Record] = []
        self.kinds: dict[str, Callable[[], Record]] = {
            "random_bytes": self.random_bytes,
            "truncated_json": self.truncated_json,
            "mistyped_json": self.mistyped_json,
            "huge_value": self.huge_value,
            "out_of_range": self.out_of_range,
            "implausible_time": self.implausible_time,
            "unknown_site": self.unknown_site,
            "unknown_destination": self.unknown_destination,
            "duplicate": self.duplicate,
        }
        self.weights = {"huge_value": 0.001}

    def next(self) -> tuple[str, Record]:
        names = list(self.kinds)
        weights = [self.weights.get(name, 1.0) for name in names]
        kind = self.rng.choices(names, weights)[0]
        if kind == "duplicate" and not self.legit:
            kind = "random_bytes"
        return kind, self.kinds[kind]()

    # ---------------------------------------------------------------- helpers

    def _topic(self) -> str:
        return self.rng.choice(TOPICS)

    def _time(self, offset_s: float) -> str:
        return (self.day_start + timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")

    def _induction(self, **overrides: object) -> dict[str, object]:
        body: dict[str, object] = {
            "event_type": "package_inducted",
            "schema_version": 1,
            "event_id": f"fuzz-{self.rng.getrandbits(64):x}",
            "event_time": self._time(self.rng.uniform(0, 600)),
            "site_id": self.site,
            "package_id": f"fuzz-{self.rng.getrandbits(48):x}",
            "destination": self.rng.choice(self.scenario.destinations),
            "station": 0,
            "attempt": 1,
        }
        body.update(overrides)
        return body

    def _encode(self, body: dict[str, object]) -> bytes:
        return json.dumps(body).encode()

    # ---------------------------------------------------------------- kinds

    def random_bytes(self) -> Record:
        n = self.rng.randrange(0, 300)
        return self._topic(), self.rng.choice([self.key, None, b"\xff\xfe"]), self.rng.randbytes(n)

    def truncated_json(self) -> Record:
        text = self._encode(self._induction())
        return INDUCTIONS.name, self.key, text[: self.rng.randrange(1, len(text) - 1)]

    def mistyped_json(self) -> Record:
        field = self.rng.choice(["attempt", "station", "event_time", "destination", "site_id"])
        bad = self.rng.choice([[1, 2], {"x": 1}, "not-a-number", None, True, 1e308])
        return INDUCTIONS.name, self.key, self._encode(self._induction(**{field: bad}))

    def huge_value(self) -> Record:
        size = self.rng.randrange(70_000, 900_000)
        body = self._induction(package_id="p" * size)
        return INDUCTIONS.name, self.key, self._encode(body)

    def out_of_range(self) -> Record:
        choice = self.rng.randrange(4)
        if choice == 0:
            return INDUCTIONS.name, self.key, self._encode(self._induction(attempt=10**9))
        if choice == 1:
            return INDUCTIONS.name, self.key, self._encode(self._induction(station=-1))
        if choice == 2:
            stations = self.scenario.induction_stations + self.rng.randrange(1, 1000)
            return INDUCTIONS.name, self.key, self._encode(self._induction(station=stations))
        index = self.rng.choice([10**30, 10**6, self.scenario.n_intervals + 5, -1])
        body = {
            "event_type": "interval_closed",
            "schema_version": 1,
            "event_id": f"fuzz-{self.rng.getrandbits(64):x}",
            "event_time": self._time(0),
            "site_id": self.site,
            "interval_index": index,
            "interval_start": self._time(0),
            "interval_end": self._time(60),
        }
        return INTERVALS.name, self.key, self._encode(body)

    def implausible_time(self) -> Record:
        when = self.rng.choice(["2999-12-31T00:00:00Z", "1970-01-01T00:00:00Z"])
        if self.rng.random() < 0.5:
            hours = self.rng.choice([-48, 30, 24 * 400])
            when = self._time(hours * 3600.0)
        return INDUCTIONS.name, self.key, self._encode(self._induction(event_time=when))

    def unknown_site(self) -> Record:
        site = f"site-{self.rng.getrandbits(32):x}"
        body = self._induction(site_id=site)
        return INDUCTIONS.name, self.rng.choice([site.encode(), self.key]), self._encode(body)

    def unknown_destination(self) -> Record:
        body = self._induction(destination=f"D-nowhere-{self.rng.randrange(1000)}")
        return INDUCTIONS.name, self.key, self._encode(body)

    def duplicate(self) -> Record:
        return self.rng.choice(self.legit)


def sample_kinds(fuzzer: Fuzzer, n: int) -> Sequence[str]:
    return [fuzzer.next()[0] for _ in range(n)]
