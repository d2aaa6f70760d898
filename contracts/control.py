"""Policy routing on the control topic: which policy serves a site, which run in shadow.

One record per change on ``chuteflow.control.v1`` (compacted, keyed by site, partitioned like
the floor topics so a site's routes reach the worker that owns the site). The record is the
site's *whole* route, not a delta: the latest one (highest ``revision``) is the truth, and a
compacted topic keeps it for good. Workers apply a route at the site's next interval boundary;
``revision`` only grows, so a redelivered or replayed old route is recognised and ignored.

Who writes it: ``chuteflow policy route|shadow|canary|promote|abort|rollback`` and the canary
gate (``rollout/``). Nothing else is trusted to: a record that fails this schema, or names a
policy the worker cannot load, is dead-lettered and the site keeps its current route.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.events import EVENT_TYPE_DOC, SCHEMA_VERSION_DOC, Envelope, Id

BUILTIN_SERVABLE = ("static", "proportional")
"""Built-in policies a live site may serve or shadow (``lookahead`` needs the day's true
arrivals: evaluation only)."""
FALLBACK_POLICIES = BUILTIN_SERVABLE
MAX_SHADOWS = 4
"""Shadows per site: each costs one more decision per interval on the worker."""
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

RouteAction = Literal["route", "shadow", "canary", "promote", "abort", "rollback", "worker-default"]
"""Why a route was written. ``worker-default``: a worker started with ``--policy`` published the
policy it serves a site with no route yet, so ``policy routes`` shows it and a rollback can
return to it."""


class PolicyRef(BaseModel):
    """A policy a route names: a built-in by name, or a store version by its full sha256."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    name: Id = Field(
        description="The policy's name: a built-in (static, proportional) or the name a store "
        "version was registered under."
    )
    sha256: str | None = Field(
        default=None,
        description="Full hex sha256 (64 lower-case digits) of a store artifact; null for a "
        "built-in.",
    )

    @field_validator("sha256")
    @classmethod
    def _full_hex(cls, value: str | None) -> str | None:
        if value is not None and not _HEX64.match(value):
            raise ValueError("sha256 must be 64 lower-case hex digits")
        return value

    @model_validator(mode="after")
    def _builtin_known(self) -> PolicyRef:
        if self.sha256 is None and self.name not in BUILTIN_SERVABLE:
            raise ValueError(
                f"built-in policy {self.name!r} cannot serve a live site "
                f"(use {', '.join(BUILTIN_SERVABLE)} or a store version)"
            )
        return self

    @property
    def key(self) -> str:
        """Identity of the policy (two refs with one key are the same policy)."""
        return f"sha256:{self.sha256}" if self.sha256 else f"builtin:{self.name}"

    @property
    def label(self) -> str:
        """``name@<12 hex>`` for a store version, the name for a built-in."""
        return f"{self.name}@{self.sha256[:12]}" if self.sha256 else self.name


class CanaryGate(BaseModel):
    """When a canary passes: its observed recirculation rate, over the intervals since it
    started, stays within ``max_ratio`` x the incumbent's counterfactual (shadow twin) rate on
    the same site and arrivals, plus ``slack`` (absolute, so near-zero rates do not fail on a
    handful of packages). Checked after every closed interval once ``min_inductions``
    packages were seen; ``failure_limit`` failing checks roll it back; ``window_intervals``
    checks without that many failures promote it."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    window_intervals: int = Field(
        default=8,
        ge=1,
        le=1_000,
        description="Checks without failure_limit failures after which the candidate is promoted.",
    )
    max_ratio: float = Field(
        default=1.1,
        gt=0,
        le=100,
        description="Largest allowed ratio of the candidate's observed recirculation rate to "
        "the incumbent's counterfactual rate.",
    )
    slack: float = Field(
        default=0.002,
        ge=0,
        le=1,
        description="Absolute recirculation rate added to the limit, so near-zero rates do not "
        "fail on a handful of packages.",
    )
    failure_limit: int = Field(
        default=2, ge=1, le=1_000, description="Failing checks that roll the candidate back."
    )
    min_inductions: int = Field(
        default=500,
        ge=0,
        le=10_000_000,
        description="First inductions the canary sites must have seen before the first check.",
    )
    promote_to: list[Id] | Literal["all"] | None = Field(
        default=None,
        description="Sites to route the candidate to when it passes (all: every site with "
        "a route); null: the canary sites only.",
    )


class CanaryState(BaseModel):
    """A canary in progress on a site: what it is compared with and under which gate."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    incumbent: PolicyRef = Field(
        description="The policy the candidate replaced; it runs in shadow as the comparison "
        "and serves again on a rollback."
    )
    gate: CanaryGate = Field(description="The pass and fail rule of this canary.")
    started_revision: int = Field(
        ge=1, description="Route revision at which the canary started on this site."
    )


class PolicyRoute(Envelope):
    """A site's route: the serving policy, its shadows, the fallback and any canary."""

    event_type: Literal["policy_route"] = Field(default="policy_route", description=EVENT_TYPE_DOC)
    schema_version: Literal[1] = Field(default=1, description=SCHEMA_VERSION_DOC)
    revision: int = Field(
        ge=1,
        le=2**53,
        description="The site's route revision; only grows. A worker ignores a route whose "
        "revision is not above the one it applied (a redelivery or an old record).",
    )
    serving: PolicyRef = Field(description="The policy that decides the site's allocations.")
    shadows: Annotated[list[PolicyRef], Field(max_length=MAX_SHADOWS)] = Field(
        default_factory=list,
        description="Policies that decide on the same live state every interval, published "
        "on the shadow topic only (at most 4, distinct, never the serving one).",
    )
    fallback: Literal["static", "proportional"] = Field(
        default="proportional",
        description="Built-in policy that decides an interval whose serving policy raised, "
        "returned NaN/inf or a wrong shape, or missed its deadline.",
    )
    deadline_ms: float | None = Field(
        default=None,
        gt=0,
        le=60_000,
        description="Inference deadline of the serving policy in milliseconds; null: the "
        "worker's default.",
    )
    canary: CanaryState | None = Field(
        default=None, description="The canary in progress on this site; null when none."
    )
    action: RouteAction = Field(
        description="What wrote this route: route, shadow, canary, promote, abort, rollback, or "
        "worker-default (a worker's --policy for a site that had no route)."
    )
    reason: str = Field(
        default="", max_length=1_000, description="Why the route changed, free text."
    )
    issued_by: str = Field(
        default="", max_length=256, description="Who wrote it (host, user or the canary gate)."
    )

    @model_validator(mode="after")
    def _distinct(self) -> PolicyRoute:
        keys = [ref.key for ref in self.shadows]
        if len(set(keys)) != len(keys):
            raise ValueError("shadows must be distinct")
        if self.serving.key in keys:
            raise ValueError("the serving policy cannot also run in shadow")
        return self

    def policies(self) -> list[PolicyRef]:
        """Serving first, then the shadows."""
        return [self.serving, *self.shadows]


CanaryOutcome = Literal["pending", "fail", "pass", "ended"]
"""``ended``: the canary's route was replaced by someone else (promote, abort, another route)."""


class CanaryCheck(Envelope):
    """One gate check of a canary, published on ``chuteflow.canary.v1`` (keyed by site) as the
    gate makes it, and the verdict it leads to: an operator (``chuteflow ops``) sees every
    check as its interval closes, not only the route the verdict writes.

    Rates are over the canary's intervals so far (``first_interval..interval``): the floor's
    observed recirculation under the candidate beside the incumbent's counterfactual twin on the
    same arrivals. ``outcome`` is the gate's state after this check; ``fail`` and ``pass`` come
    with the route revision the gate wrote (rollback or promotion).
    """

    event_type: Literal["canary_check"] = Field(default="canary_check", description=EVENT_TYPE_DOC)
    schema_version: Literal[1] = Field(default=1, description=SCHEMA_VERSION_DOC)
    day_key: Id = Field(description="The day run the check is on (``DayStarted.day_key``).")
    interval: int = Field(
        ge=-1, le=100_000, description="Last interval the check covers; -1: none served yet."
    )
    first_interval: int | None = Field(
        default=None, ge=0, le=100_000, description="First interval the candidate served."
    )
    inducted: int = Field(ge=0, description="First inductions over the checked intervals.")
    canary_rate: float = Field(
        ge=0, description="The floor's recirculation rate under the candidate (observed)."
    )
    incumbent_rate: float = Field(
        ge=0, description="The incumbent's counterfactual recirculation rate (twin, same arrivals)."
    )
    limit: float = Field(ge=0, description="max_ratio x incumbent_rate + slack.")
    passed: bool = Field(description="canary_rate <= limit.")
    failures: int = Field(ge=0, description="Failed checks of this canary so far.")
    checks: int = Field(ge=0, description="Checks of this canary so far.")
    outcome: CanaryOutcome = Field(description="The gate's state after this check.")
    candidate: PolicyRef = Field(description="The policy on canary (serving the site).")
    incumbent: PolicyRef = Field(description="What the candidate is compared with.")
    canary_revision: int = Field(ge=1, description="The route revision that opened the canary.")
    verdict_revision: int | None = Field(
        default=None, ge=1, description="Revision of the route the verdict wrote, if any."
    )
    latency_ms: float | None = Field(
        default=None,
        ge=0,
        description="Milliseconds from the interval's close being read to this check published.",
    )
    reason: str = Field(default="", max_length=1_000, description="The verdict in words.")


__all__ = [
    "BUILTIN_SERVABLE",
    "FALLBACK_POLICIES",
    "MAX_SHADOWS",
    "CanaryCheck",
    "CanaryGate",
    "CanaryOutcome",
    "CanaryState",
    "PolicyRef",
    "PolicyRoute",
    "RouteAction",
]
