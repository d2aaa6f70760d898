"""The records chuteflow writes that are not floor events: audit, dead letters, policy store.

They were free-form JSON; these models describe the shape their writers produce
(``stream/processor.py`` for audit records, ``stream/deadletter.py`` for dead letters,
``stream/policy_store.py`` for the policy store, ``stream/policy_alias.py`` for its aliases)
so integrators get a JSON Schema for every topic. The writers build plain dicts;
``tests/contracts/test_records.py`` runs each writer and validates what it produced against
these models and their exported schemas, so the two cannot drift apart silently.

Audit records are open (a new field may be added without a new version: consumers ignore
fields they do not know); dead letters and store records are closed, like the events.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.control import RouteAction
from contracts.events import SolverStatus

DecisionTrigger = Literal[
    "day_started", "interval_closed", "event_time", "stalled", "timer", "skipped"
]


class _Closed(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class DeadLetter(_Closed):
    """A record the worker could not use, with why, where it came from and its original bytes.

    Keyed like the original record (the key "unknown" when it had none). To re-publish a fixed
    record, decode value_base64, fix it and produce it to topic with the original key.
    """

    reason: str = Field(
        max_length=1000,
        description="Why the record was refused, one line; it starts with its kind and a "
        "colon (for example duplicate: ...).",
    )
    kind: str = Field(
        description="The reason's kind, the word before its first colon (decode, duplicate, "
        "implausible_time, unknown_site, key_mismatch, policy_refused ...), or other; metrics "
        "count dead letters by it."
    )
    topic: str = Field(max_length=256, description="Topic the original record was read from.")
    partition: int = Field(
        ge=-1, description="Partition the original was read from; -1 when not known."
    )
    offset: int = Field(ge=-1, description="Offset of the original; -1 when not known.")
    key_base64: str | None = Field(
        description="The original key (at most 1024 bytes kept), base64; null when it had none."
    )
    value_base64: str = Field(
        description="The original value, base64 (it may not be UTF-8); at most the worker's "
        "dead-letter value limit (16 KiB by default) is kept."
    )
    value_bytes: int = Field(ge=0, description="Size of the whole original value in bytes.")
    truncated: bool = Field(
        description="True when value_base64 holds only the first part of the original value."
    )
    value_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="Hex sha256 of the whole original value (also when truncated).",
    )


class AuditPolicy(_Open):
    """The policy that decided."""

    name: str = Field(description="Policy name, as on the allocation.")
    version: str = Field(description="Policy version, as on the allocation.")
    sha256: str | None = Field(
        description="Full sha256 of the ONNX artifact; null for a built-in policy."
    )


class AuditInputs(_Open):
    """What the decision saw, summed over destinations and chutes."""

    arrivals_last_interval: int = Field(
        ge=0, description="First inductions counted in the interval that just closed."
    )
    recirculated_last_interval: int = Field(
        ge=0, description="Recirculations counted in the interval that just closed."
    )
    backlog: int = Field(ge=0, description="Packages waiting to be inducted again.")
    chutes_available: int = Field(ge=0, description="Chutes not out of service.")
    chutes_open: int = Field(
        ge=0, description="Chutes able to eject now (available, not swapping or moving)."
    )
    chutes_held: int = Field(ge=0, description="Chutes holding a destination before deciding.")
    records_counted: dict[str, int] = Field(
        description="Valid floor records applied per topic for the closed interval."
    )
    records_declared: dict[str, int] | None = Field(
        description="Records per topic the interval_closed record announced "
        "(events_in_interval); null when it announced none."
    )


class ShadowSummary(_Open):
    """One shadow policy's decision on the same state (the decision itself is on the shadow
    topic)."""

    policy: str = Field(description="The shadow policy, name@12 hex digits or a built-in name.")
    decision_id: str = Field(description="decision_id of its record on the shadow topic.")
    chutes_differing: int = Field(
        ge=0, description="Chutes the shadow allocation gives to another destination."
    )
    total_ms: float = Field(ge=0, description="Its decision time in milliseconds.")
    fallback_reason: str | None = Field(
        description="Why its fallback decided instead, null when the shadow policy decided."
    )


class DecisionAudit(_Open):
    """Inputs and solver result of one served decision (one per allocation record).

    A record without a kind field; route acknowledgements on the same topic have
    kind route_received. Re-published with the allocation it belongs to after a restart.
    """

    decision_id: str = Field(description="decision_id of the allocation this record explains.")
    site_id: str = Field(description="The site (also the record key).")
    interval_index: int = Field(ge=0, description="The interval the allocation applies to.")
    trigger: DecisionTrigger = Field(
        description="What closed the previous interval: day_started (the day's first "
        "decision), interval_closed (its close and every record it announced arrived), "
        "event_time (a floor event past the interval's end), stalled (its close waited too "
        "long for records), timer (live mode, no close arrived) or skipped (a later close "
        "arrived first)."
    )
    worker: str | None = Field(description="The worker that decided (host/pid), if it is named.")
    solver_status: SolverStatus = Field(description="As on the allocation.")
    policy: AuditPolicy = Field(description="The policy that decided: name, version, hash.")
    route_revision: int = Field(
        ge=0, description="The site's route revision (0: the worker's own policy, no route)."
    )
    fallback_reason: str | None = Field(
        description="Why the site's fallback policy decided instead; null when the routed "
        "policy decided."
    )
    proven_optimal: bool = Field(
        description="Whether CP-SAT proved the projection optimal within its time limit."
    )
    moves: int = Field(ge=0, description="Chutes that changed destination with this allocation.")
    policy_error: str | None = Field(
        description="The policy's error when it failed (the allocation was repaired or fell "
        "back); null otherwise."
    )
    timings_ms: dict[str, float] = Field(
        description="Milliseconds per decision step (features, policy, solve, map, total ...)."
    )
    inputs: AuditInputs = Field(description="Summary of the state the decision was made on.")
    shadows: list[ShadowSummary] = Field(
        description="The site's shadow policies' decisions on the same state; empty when none."
    )


class RouteReceived(_Open):
    """A worker's acknowledgement that it applied a site's route (a refused route is a dead
    letter with kind policy_refused instead)."""

    kind: Literal["route_received"] = Field(
        description="Always route_received: tells these records from decision audits."
    )
    site_id: str = Field(description="The site (also the record key).")
    revision: int = Field(ge=1, description="Revision of the route applied.")
    action: RouteAction = Field(description="The route's action (route, shadow, canary ...).")
    serving: str = Field(description="The serving policy, name@12 hex digits or a built-in.")
    shadows: list[str] = Field(description="The shadow policies, same form.")
    reason: str = Field(description="The route's reason text.")
    worker: str | None = Field(description="The worker that applied it (host/pid), if named.")
    open_interval: int | None = Field(
        description="The site's open interval when the route arrived (it decides from the next "
        "decision on); null when no day was open."
    )


class PolicyReport(_Closed):
    """An evaluation report stored with a policy."""

    file: str = Field(description="The report's file name when it was registered.")
    format: Literal["json", "markdown"] = Field(description="json or markdown.")
    content: Any = Field(description="The report: parsed JSON, or the Markdown text.")


class PolicyMetadata(_Closed):
    """What the policy store records about one ONNX policy."""

    name: str = Field(description="The name the policy was registered under.")
    version: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="Hex sha256 of the ONNX bytes: the version."
    )
    size: int = Field(ge=0, description="Size of the ONNX artifact in bytes.")
    registered_at: str = Field(
        description="When it was registered, ISO-8601 with offset, to the second.",
        json_schema_extra={"format": "date-time"},
    )
    features: list[str] = Field(description="The input features the policy was trained on.")
    scenarios: list[str] = Field(
        description="Scenarios (sites) the policy may serve; a worker refuses any other."
    )
    guardrail_versions: dict[str, str] = Field(
        description="Guardrail set version of each compatible scenario."
    )
    settings: Any = Field(
        description="The training settings file it came with (any JSON); null when none."
    )
    report: PolicyReport | None = Field(
        description="The evaluation report it came with; null when none."
    )
    onnx_metadata: dict[str, str] = Field(description="The ONNX model's metadata properties.")


class PolicyStoreRecord(_Closed):
    """One record of the compacted policy store, keyed sha256:<hex> of the artifact."""

    format: Literal["chuteflow.policy/1"] = Field(
        description="Record format and version; readers skip records of another format."
    )
    metadata: PolicyMetadata = Field(description="The policy's metadata.")
    artifact: str = Field(description="The ONNX bytes, base64.")


class PolicyAlias(_Closed):
    """An alias of the policy store: NAME@ALIAS names one version of the policy NAME.

    Keyed alias:NAME@ALIAS on the store's topic, beside the store records; compaction keeps the
    last record per key, so the alias points at the version of its latest record. A tombstone
    (the key with a null value) removes the alias. Written by chuteflow policy alias; a route
    carries the full version an alias resolved to, so moving an alias changes nothing that
    already serves. Store readers that do not know aliases skip these records by their format.
    """

    format: Literal["chuteflow.policy-alias/1"] = Field(
        description="Record format and version; readers skip records of another format."
    )
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="The policy name the alias belongs to, as registered in the store.",
    )
    alias: str = Field(
        pattern=r"^[a-z][a-z0-9_-]{0,63}$",
        description="The alias: lower-case letters, digits, _ or -, starting with a letter; "
        "never latest (built in: the version registered last).",
    )
    version: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="Hex sha256 of the ONNX bytes of the version the alias points at; a store "
        "record keyed sha256: and this value holds it.",
    )
    set_at: str = Field(
        description="When the alias was set, ISO-8601 with offset, to the second.",
        json_schema_extra={"format": "date-time"},
    )


RECORD_TYPES: dict[str, tuple[type[BaseModel], int]] = {
    "decision_audit": (DecisionAudit, 1),
    "route_received": (RouteReceived, 1),
    "dead_letter": (DeadLetter, 1),
    "policy_store_record": (PolicyStoreRecord, 1),
    "policy_alias": (PolicyAlias, 1),
}
"""Record types by name, with their schema version (the topic's major version)."""

__all__ = [
    "RECORD_TYPES",
    "AuditInputs",
    "AuditPolicy",
    "DeadLetter",
    "DecisionAudit",
    "PolicyAlias",
    "PolicyMetadata",
    "PolicyReport",
    "PolicyStoreRecord",
    "RouteReceived",
    "ShadowSummary",
]
