"""What a site *is*, for every room above the ground floor: its scenario, the guardrails that
hold on it, and the two views of it the decision path needs (names to write allocations, and
the few physical constants a value model reads).

A :class:`Site` is only made by :func:`load_site`, which checks the guardrails against the
scenario, so no engine, worker, trainer or evaluation can run a site under limits written for
another one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from floor.guardrails import GuardrailSet, load_guardrails
from floor.scenario import Scenario, load_scenario


@dataclass(frozen=True)
class SiteLayout:
    """Names the engine needs to write an allocation event a WCS can apply."""

    site_id: str
    chute_ids: tuple[str, ...]
    destinations: tuple[str, ...]


@dataclass(frozen=True)
class SitePhysics:
    """The few floor constants a value model needs (from the scenario)."""

    eject_chutes: int
    max_chutes_per_destination: int
    interval_seconds: float
    chute_packages_per_second: float
    container_capacity: int
    swap_seconds: float
    move_seconds: float
    tick_seconds: float
    """Window over which arrivals are counted against chute capacity (the twin's step)."""


@dataclass(frozen=True)
class Site:
    """A scenario and the guardrail set checked against it."""

    scenario: Scenario
    guardrails: GuardrailSet

    @property
    def layout(self) -> SiteLayout:
        s = self.scenario
        return SiteLayout(s.site_id, s.chute_ids, s.destinations)

    @property
    def physics(self) -> SitePhysics:
        s = self.scenario
        return SitePhysics(
            eject_chutes=s.eject_chutes,
            max_chutes_per_destination=s.max_chutes_per_destination,
            interval_seconds=s.interval_minutes * 60.0,
            chute_packages_per_second=s.chute_packages_per_minute / 60.0,
            container_capacity=s.container_capacity,
            swap_seconds=s.swap_seconds,
            move_seconds=s.move_seconds,
            tick_seconds=s.tick_seconds,
        )

    def check(self) -> None:
        """Raise ``GuardrailError`` if the guardrails cannot be used on this scenario."""
        self.guardrails.check_against(self.scenario.destinations, self.scenario.eject_chutes)


def load_site(
    scenario: str | Path | Scenario,
    guardrails: str | Path | GuardrailSet | None = None,
) -> Site:
    """A site by scenario (name, YAML path or object) and guardrails (default: the site
    file's own ``guardrails:`` section, else ``guardrails-<name>.yaml`` beside the scenario's
    file, else the shipped set named after the scenario), checked against each other.

    Raises:
        ScenarioError, GuardrailError: one line naming the file and the problem.
    """
    scen = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    if guardrails is None and scen.guardrails is not None:
        guardrails = scen.guardrail_set()  # a site file's own section comes first
    if guardrails is None:
        beside = scen.source_dir / f"guardrails-{scen.name}.yaml" if scen.source_dir else None
        guardrails = beside if beside is not None and beside.is_file() else scen.name
    rails = guardrails if isinstance(guardrails, GuardrailSet) else load_guardrails(guardrails)
    site = Site(scen, rails)
    site.check()
    return site


__all__ = ["Site", "SiteLayout", "SitePhysics", "load_site"]
