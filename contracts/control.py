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

from contracts.events import Envelope, Id

BUILTIN_SERVABLE = ("static", "proportional")
"""Built-in policies a live site may serve or shadow (``lookahead`` needs the day's true
arrivals: evaluation only)."""
FALLBACK_POLICIES = BUILTIN_SERVABLE
MAX_SHADOWS = 4
"""Shadows per site: each costs one more decision per interval on the worker."""
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

RouteAction = Literal["route", "shadow", "canary", "promote", "abort", "rollback"]


class PolicyRef(BaseModel):
    """A policy a route names: a built-in by name, or a store version by its full sha256."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    name: Id
    sha256: str | None = Field(
        default=None, description="Full hex sha256 of a store artifact; None for a built-in."
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

    window_intervals: int = Field(default=8, ge=1, le=1_000)
    max_ratio: float = Field(default=1.1, gt=0, le=100)
    slack: float = Field(default=0.002, ge=0, le=1)
    failure_limit: int = Field(default=2, ge=1, le=1_000)
    min_inductions: int = Field(default=500, ge=0, le=10_000_000)
    promote_to: list[Id] | Literal["all"] | None = Field(
        default=None,
        description="Sites to route the candidate to when it passes (``all``: every site with "
        "a route); None: the canary sites only.",
    )


class CanaryState(BaseModel):
    """A canary in progress on a site: what it is compared with and under which gate."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    incumbent: PolicyRef
    gate: CanaryGate
    started_revision: int = Field(ge=1)


class PolicyRoute(Envelope):
    """A site's route: the serving policy, its shadows, the fallback and any canary."""

    event_type: Literal["policy_route"] = "policy_route"
    schema_version: Literal[1] = 1
    revision: int = Field(ge=1, le=2**53)
    serving: PolicyRef
    shadows: Annotated[list[PolicyRef], Field(max_length=MAX_SHADOWS)] = Field(default_factory=list)
    fallback: Literal["static", "proportional"] = "proportional"
    deadline_ms: float | None = Field(
        default=None,
        gt=0,
        le=60_000,
        description="Inference deadline of the serving policy; None: the worker's default.",
    )
    canary: CanaryState | None = None
    action: RouteAction
    reason: str = Field(default="", max_length=1_000)
    issued_by: str = Field(default="", max_length=256)

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


__all__ = [
    "BUILTIN_SERVABLE",
    "FALLBACK_POLICIES",
    "MAX_SHADOWS",
    "CanaryGate",
    "CanaryState",
    "PolicyRef",
    "PolicyRoute",
    "RouteAction",
]
