"""The guardrails section of a site file: a guardrail set written inside the site it is for.

A standalone guardrail set (``floor/guardrail_sets/*.yaml``) names its scenario and repeats the
chute count and destination list; inside a site file those come from the site itself, so they
cannot disagree. :meth:`SiteGuardrails.to_set` turns the section into the same
:class:`~floor.guardrails.GuardrailSet` every projection, repair and validator reads, so a
site file's limits are held exactly like a shipped set's.

The cross-checks against the site (chute budget, unknown override ids) live in
:func:`check_against_site`, called by the scenario's validator, so every message can name the
field at fault (``guardrails.min_chutes_per_destination: ...``).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from floor.guardrails import GuardrailSet


class SiteGuardrails(BaseModel):
    """A site file's ``guardrails:`` section (the site supplies scenario, chutes and ids)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(min_length=1, description="Recorded on every allocation event.")
    total_eject_chutes: int | None = Field(
        default=None, gt=0, description="Optional; when given it must equal eject_chutes."
    )
    min_chutes_per_destination: int = Field(
        default=0, ge=0, description="Chutes every destination keeps (0 where C < D)."
    )
    min_overrides: dict[str, int] = Field(
        default_factory=dict, description="Per-destination minimums that replace the default."
    )
    max_chutes_per_destination: int = Field(
        ge=1, description="Most chutes one destination may hold (a spike cannot take the floor)."
    )
    max_overrides: dict[str, int] = Field(
        default_factory=dict, description="Per-destination maximums that replace the default."
    )
    max_moves_per_interval: int = Field(
        ge=0, description="Chutes that may gain a new destination per interval."
    )

    @classmethod
    def from_set(cls, limits: GuardrailSet) -> SiteGuardrails:
        """A shipped set written into its site's file (a built-in layout under another site
        id, e.g. ``bench fleet``'s sites in the site catalog): the same limits and version."""
        return cls(
            version=limits.version,
            total_eject_chutes=limits.total_eject_chutes,
            min_chutes_per_destination=limits.min_chutes_per_destination,
            min_overrides=dict(limits.min_overrides),
            max_chutes_per_destination=limits.max_chutes_per_destination,
            max_overrides=dict(limits.max_overrides),
            max_moves_per_interval=limits.max_moves_per_interval,
        )

    def to_set(self, scenario: str, eject_chutes: int, destinations: Sequence[str]) -> GuardrailSet:
        """The guardrail set this section describes on a site with these chutes and ids."""
        return GuardrailSet(
            version=self.version,
            scenario=scenario,
            total_eject_chutes=eject_chutes,
            min_chutes_per_destination=self.min_chutes_per_destination,
            min_overrides=dict(self.min_overrides),
            max_chutes_per_destination=self.max_chutes_per_destination,
            max_overrides=dict(self.max_overrides),
            max_moves_per_interval=self.max_moves_per_interval,
            destinations=tuple(destinations),
        )


def check_against_site(
    rails: SiteGuardrails, eject_chutes: int, destinations: Sequence[str]
) -> str | None:
    """The first way ``rails`` cannot hold on a site with these chutes and destinations, as
    ``field: problem`` (``None`` when they can). Checked in the order an operator would fix
    them: declared budget, override ids, per-destination bounds, then the chute budget."""
    if rails.total_eject_chutes is not None and rails.total_eject_chutes != eject_chutes:
        return (
            f"guardrails.total_eject_chutes: must equal eject_chutes "
            f"({rails.total_eject_chutes} != {eject_chutes})"
        )
    known = set(destinations)
    for field, overrides in (
        ("min_overrides", rails.min_overrides),
        ("max_overrides", rails.max_overrides),
    ):
        for destination, n in overrides.items():
            if destination not in known:
                return f"guardrails.{field}.{destination}: not one of the site's destinations"
            if n < 0:
                return f"guardrails.{field}.{destination}: must be >= 0 (got {n})"
    low = {d: rails.min_overrides.get(d, rails.min_chutes_per_destination) for d in destinations}
    high = {d: rails.max_overrides.get(d, rails.max_chutes_per_destination) for d in destinations}
    for destination in destinations:
        if low[destination] > high[destination]:
            field = (
                f"min_overrides.{destination}"
                if destination in rails.min_overrides
                else "min_chutes_per_destination"
            )
            return (
                f"guardrails.{field}: minimum of {destination} exceeds its maximum "
                f"({low[destination]} > {high[destination]})"
            )
    guaranteed = sum(low.values())
    if guaranteed > eject_chutes:
        return (
            f"guardrails.min_chutes_per_destination: guaranteed chutes exceed eject_chutes "
            f"({guaranteed} guaranteed > {eject_chutes} chutes; {len(destinations)} destinations "
            f"x {rails.min_chutes_per_destination} plus overrides)"
        )
    return None


__all__ = ["SiteGuardrails", "check_against_site"]
