"""Every event that crosses Kafka, as frozen pydantic models.

Each event carries the same envelope (CloudEvents-like): ``event_id``, ``event_type``,
``schema_version``, ``event_time`` (UTC) and ``site_id``. ``event_type`` is the
discriminator, so a topic's payload decodes to exactly one model and an unknown type is a
decode error rather than a silent guess. Models forbid extra fields: a producer that adds a
field must bump ``schema_version`` and add a model for it next to the old one, so old
messages keep parsing (golden fixtures in ``tests/fixtures/contracts`` prove it).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import core_schema

from contracts.limits import (
    MAX_ATTEMPT,
    MAX_INTERVAL_INDEX,
    MAX_RECORDS_PER_INTERVAL,
    MAX_STATION,
)

Id = Annotated[str, Field(min_length=1, max_length=128)]


class _UtcOffsetZero:
    """A datetime whose UTC offset is zero (``Z`` or ``+00:00``), checked by pydantic-core
    itself (``tz_constraint=0``). It was a Python field validator, called once per decoded
    record: ~0.5-0.9 us of a worker's ~10 us a record (issue 22). pydantic-core's message
    ("Timezone offset of 0 required") is reworded by ``contracts.codec``."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.datetime_schema(tz_constraint=0)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> Any:
        return handler(core_schema.datetime_schema())


UtcDatetime = Annotated[datetime, _UtcOffsetZero]
"""An event's time: aware and in UTC. A non-UTC offset is legal ISO-8601 but makes replayed
days ambiguous around DST, so it is refused."""

EVENT_TYPE_DOC = (
    "The record's type, which names its schema (the discriminator of the topic's records)."
)
SCHEMA_VERSION_DOC = (
    "Major version of this record type's schema; a breaking change adds a new version (and "
    "topic) beside the old one, so old records keep parsing."
)
PACKAGE_DOC = "The package's id (a barcode or WMS id), unique within the site's day."
DESTINATION_DOC = "The destination (route, lane, customer) the package is sorted to."
ATTEMPT_DOC = "Which induction of the package this is: 1 for the first, n for the n-th."

RecirculationReason = Literal["no_chute_allocated", "chutes_full_or_swapping", "chute_over_rate"]
"""Why a package could not be ejected: its destination holds no chute; every chute it holds is
full, swapping its container or out of service; or its open chutes could not eject more
packages this instant (drive queue over the chute's service rate)."""

ChuteState = Literal[
    "open", "full", "swap_started", "swap_finished", "out_of_service", "back_in_service"
]

SolverStatus = Literal["optimal", "feasible", "fallback_previous", "fallback_repaired"]
"""``optimal``/``feasible``: CP-SAT's own status. ``fallback_previous``: the solver gave no
feasible answer in time and the previous allocation, which still met the guardrails, was
kept. ``fallback_repaired``: the previous allocation had to be repaired to the guardrails."""


class Envelope(BaseModel):
    """Fields every event carries; the subclasses fix ``event_type`` and ``schema_version``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    event_id: Id = Field(
        description="Unique id of this record, chosen by its producer; a redelivery of the same "
        "record carries the same id."
    )
    event_time: UtcDatetime = Field(
        description="When the event happened on the floor (or was decided), ISO-8601 in UTC "
        "(offset Z or +00:00; any other offset is refused)."
    )
    site_id: Id = Field(
        description="The sortation site the record belongs to; also the Kafka message key "
        "(UTF-8), so one site's records share one partition."
    )


class PackageInducted(Envelope):
    """A package was placed on a drive at an induction station (first time or again)."""

    event_type: Literal["package_inducted"] = Field(
        default="package_inducted", description=EVENT_TYPE_DOC
    )
    schema_version: Literal[1] = Field(default=1, description=SCHEMA_VERSION_DOC)
    package_id: Id = Field(description=PACKAGE_DOC)
    destination: Id = Field(description=DESTINATION_DOC)
    station: int = Field(
        ge=0, le=MAX_STATION, description="Index of the induction station that placed it."
    )
    attempt: int = Field(ge=1, le=MAX_ATTEMPT, description=ATTEMPT_DOC)


class PackageSorted(Envelope):
    """A package was ejected into a chute of its destination."""

    event_type: Literal["package_sorted"] = Field(
        default="package_sorted", description=EVENT_TYPE_DOC
    )
    schema_version: Literal[1] = Field(default=1, description=SCHEMA_VERSION_DOC)
    package_id: Id = Field(description=PACKAGE_DOC)
    destination: Id = Field(description=DESTINATION_DOC)
    chute_id: Id = Field(description="The eject chute the package went into.")
    attempt: int = Field(ge=1, le=MAX_ATTEMPT, description=ATTEMPT_DOC)


class PackageRecirculated(Envelope):
    """A package went to the recirculation chute and will be inducted again."""

    event_type: Literal["package_recirculated"] = Field(
        default="package_recirculated", description=EVENT_TYPE_DOC
    )
    schema_version: Literal[1] = Field(default=1, description=SCHEMA_VERSION_DOC)
    package_id: Id = Field(description=PACKAGE_DOC)
    destination: Id = Field(description=DESTINATION_DOC)
    attempt: int = Field(ge=1, le=MAX_ATTEMPT, description=ATTEMPT_DOC)
    reason: RecirculationReason = Field(
        description="Why it could not be ejected: no_chute_allocated (its destination holds "
        "no chute), chutes_full_or_swapping (every chute it holds is full, swapping its "
        "container or out of service) or chute_over_rate (its open chutes could not eject "
        "more packages at that instant)."
    )
    to_exception: bool = Field(
        default=False,
        description="True when this was the package's last attempt: it leaves the loop for "
        "manual exception handling instead of being inducted again.",
    )


class ChuteStateChanged(Envelope):
    """An eject chute changed state; ``destination`` is its owner at that time, if any."""

    event_type: Literal["chute_state_changed"] = Field(
        default="chute_state_changed", description=EVENT_TYPE_DOC
    )
    schema_version: Literal[1] = Field(default=1, description=SCHEMA_VERSION_DOC)
    chute_id: Id = Field(description="The eject chute whose state changed.")
    state: ChuteState = Field(
        description="The chute's new state: open, full (its container is full), "
        "swap_started / swap_finished (container exchange), out_of_service or "
        "back_in_service."
    )
    destination: Id | None = Field(
        default=None,
        description="The destination the chute held at that time; null when it held none.",
    )


class IntervalClosed(Envelope):
    """A decision interval ended; the engine decides the allocation for the next one."""

    event_type: Literal["interval_closed"] = Field(
        default="interval_closed", description=EVENT_TYPE_DOC
    )
    schema_version: Literal[1] = Field(default=1, description=SCHEMA_VERSION_DOC)
    interval_index: int = Field(
        ge=0,
        le=MAX_INTERVAL_INDEX,
        description="Index of the interval that ended, counted from 0 at the day's start.",
    )
    interval_start: AwareDatetime = Field(description="Start of the interval that ended (UTC).")
    interval_end: AwareDatetime = Field(
        description="End of the interval that ended (UTC); after interval_start."
    )
    events_in_interval: (
        dict[Id, Annotated[int, Field(ge=0, le=MAX_RECORDS_PER_INTERVAL)]] | None
    ) = Field(
        default=None,
        max_length=16,
        description="Optional, added in v1 with a default (old messages still parse): records "
        "the producer published for this site on each floor topic (topic name to count) since "
        "its previous interval_closed. Kafka orders records only within one partition of one "
        "topic, so a consumer that reads several topics may see this event before the last "
        "sortation or chute-state records of the interval; with the counts it waits for them.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> IntervalClosed:
        if self.interval_end <= self.interval_start:
            raise ValueError("interval_end must be after interval_start")
        return self


class DayStarted(Envelope):
    """A site's operating day begins; the engine decides the day's first allocation now.

    Added in v1 as a new event type (nothing existing changed). The first decision of a day has
    no interval_closed before it. The plan a policy sees is the worker's own calendar forecast
    over the site's day-type groups (``floor/forecast.py``), as in the twin, never a producer's
    declaration: ``day_type_group`` is only an optional hint (an internal cluster index a WCS
    cannot be expected to know), so an absent or unknown one never costs the day.
    """

    event_type: Literal["day_started"] = Field(default="day_started", description=EVENT_TYPE_DOC)
    schema_version: Literal[1] = Field(default=1, description=SCHEMA_VERSION_DOC)
    day_start: AwareDatetime = Field(
        description="When the site's operating day starts (UTC): interval 0 starts here and "
        "interval k starts k interval lengths later."
    )
    day_type_group: int | None = Field(
        default=None,
        description="Optional hint, may be absent or null: the planner's guess of the day "
        "type as an index into the site's day-type groups. The worker plans from its own "
        "calendar forecast either way; a value the site does not know is ignored, never an "
        "error.",
    )

    def day_key(self) -> str:
        """The operating day's identity in decision ids: :func:`day_key` of this record."""
        return day_key(self.day_start, self.event_id)


def day_key(day_start: datetime, day_started_event_id: str) -> str:
    """``YYYY-MM-DD.<8 hex>``: the date and a hash of the ``day_started`` record's id.

    A redelivered ``day_started`` (same ``event_id``) is the same day; a second run of the same
    date (a replayed or repeated day) has another ``event_id`` and therefore other decision ids,
    so a WCS that drops repeated ids never drops a new day's allocations.
    """
    digest = hashlib.sha256(day_started_event_id.encode("utf-8")).hexdigest()[:8]
    return f"{day_start.date().isoformat()}.{digest}"


class AllocationDecided(Envelope):
    """The chute plan for one site and interval, as a WCS applies it.

    ``decision_id`` (``site/day/interval/policy@version``, ``day`` from :func:`day_key`) is
    stable for (site, day, interval, policy version): a consumer that sees the same id twice (a
    redelivery, always with the same content) drops the second; another day, or another run of
    the same date, never repeats an id.
    """

    event_type: Literal["allocation_decided"] = Field(
        default="allocation_decided", description=EVENT_TYPE_DOC
    )
    schema_version: Literal[1] = Field(default=1, description=SCHEMA_VERSION_DOC)
    decision_id: Id = Field(
        description="site/day/interval/policy@version, where day is the date and 8 hex digits "
        "of a hash of the day_started record's id. The same for a redelivery (always with the "
        "same content): a consumer keeps the first record of an id and drops repeats."
    )
    interval_index: int = Field(
        ge=0, description="The interval this allocation applies to, counted from 0."
    )
    interval_start: AwareDatetime = Field(
        description="Start of that interval (UTC); also the record's event_time, so a "
        "redelivered decision is byte-identical."
    )
    chute_map: dict[Id, Id] = Field(
        description="Chute id to destination id for every chute that holds a destination in "
        "this interval; a chute not listed stays idle."
    )
    chutes_per_destination: dict[Id, Annotated[int, Field(ge=0)]] = Field(
        description="Number of chutes each destination holds; equals the count of that "
        "destination in chute_map (destinations with 0 may be listed)."
    )
    policy_name: Id = Field(description="The policy that decided (a built-in or a store name).")
    policy_version: Id = Field(
        description="Version of that policy (the first 16 hex digits of a store policy's "
        "sha256, or the built-in's version)."
    )
    guardrail_version: Id = Field(
        description="Version of the guardrail set the allocation was projected onto and "
        "validated against."
    )
    solver_status: SolverStatus = Field(
        description="optimal or feasible: the CP-SAT projection's own status. "
        "fallback_previous: the solver gave no feasible answer in time and the previous "
        "allocation, which still met the guardrails, was kept. fallback_repaired: the previous "
        "allocation had to be repaired to meet the guardrails."
    )
    policy_sha256: str | None = Field(
        default=None,
        max_length=64,
        description="Optional, added in v1 with a default (old messages still parse): the "
        "sha256 of the ONNX artifact that decided (null for a built-in policy).",
    )
    route_revision: int | None = Field(
        default=None,
        ge=0,
        description="Optional, added in v1: the site's control-topic route revision this "
        "decision was made under (0: the worker's --policy, no route yet).",
    )
    fallback_reason: str | None = Field(
        default=None,
        max_length=500,
        description="Optional, added in v1: set when the routed policy raised, returned "
        "NaN/inf or a wrong shape, or missed its inference deadline, and the site's fallback "
        "policy (named in policy_name) decided this interval instead.",
    )
    fallback_from: str | None = Field(
        default=None,
        max_length=200,
        description="Optional, added in v1: the routed policy (name@version) that the "
        "fallback replaced; decision_id keeps naming it, so a redelivery keeps its id.",
    )

    @model_validator(mode="after")
    def _counts_match_map(self) -> AllocationDecided:
        counts: dict[str, int] = {}
        for destination in self.chute_map.values():
            counts[destination] = counts.get(destination, 0) + 1
        declared = {d: n for d, n in self.chutes_per_destination.items() if n > 0}
        if counts != declared:
            raise ValueError("chutes_per_destination does not match chute_map")
        return self


Event = Annotated[
    PackageInducted
    | PackageSorted
    | PackageRecirculated
    | ChuteStateChanged
    | IntervalClosed
    | DayStarted
    | AllocationDecided,
    Field(discriminator="event_type"),
]

EVENT_TYPES: dict[str, type[Envelope]] = {
    "package_inducted": PackageInducted,
    "package_sorted": PackageSorted,
    "package_recirculated": PackageRecirculated,
    "chute_state_changed": ChuteStateChanged,
    "interval_closed": IntervalClosed,
    "day_started": DayStarted,
    "allocation_decided": AllocationDecided,
}
