"""A sortation site as data: layout, timing and the physics parameters of the twin.

Scenarios are YAML files (``floor/scenarios/*.yaml``); ``small`` and ``large`` are the paper's
two settings. Every parameter the paper leaves open is a field here with the reason for its
default in the YAML next to it, so a site engineer changes numbers, not code.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from floor.config import load_yaml_model
from floor.errors import ChuteflowError
from floor.guardrails import GuardrailSet
from floor.site_guardrails import SiteGuardrails, check_against_site

SCENARIO_DIR = Path(__file__).parent / "scenarios"
BUILTIN_SCENARIOS = ("small", "large")

Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class ScenarioError(ChuteflowError):
    """A scenario file that cannot be used; the message names the file and the problem."""


class Scenario(BaseModel):
    """One site: its chutes, destinations, day and the twin's physical parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    site_id: str
    eject_chutes: int = Field(gt=0, description="Eject chutes shared by all destinations.")
    recirculation_chutes: int = Field(ge=1, description="Chutes that send packages round again.")
    destinations: tuple[str, ...] = Field(min_length=1)
    day_start: AwareDatetime = Field(description="Start of the reference day (UTC).")
    day_hours: Positive
    interval_minutes: Positive = Field(description="Decision interval.")
    tick_seconds: Positive = Field(description="Time step of the vectorized twin.")
    default_groups: int = Field(gt=0, description="Day-type groups fitted by default.")
    mean_packages_per_hour: Positive = Field(description="Typical-day induction rate.")

    induction_stations: int = Field(gt=0)
    station_packages_per_hour: Positive = Field(description="Induction capacity of one station.")
    travel_seconds: NonNegative = Field(description="Drive travel from induction to chute.")
    chute_packages_per_minute: Positive = Field(description="Eject service rate of one chute.")
    container_capacity: int = Field(gt=0, description="Packages a chute container holds.")
    swap_seconds: NonNegative = Field(description="Chute closed while its container is swapped.")
    move_seconds: NonNegative = Field(description="Chute closed when it changes destination.")
    reinduction_seconds: NonNegative = Field(description="Recirculation loop back to induction.")
    chute_failures_per_hour: NonNegative = Field(description="Per chute; out-of-service rate.")
    repair_minutes: NonNegative = Field(description="Mean time a failed chute stays out.")
    max_attempts: int = Field(ge=1, description="Inductions before a package goes to exception.")
    max_chutes_per_destination: int = Field(gt=0, description="Upper bound of an agent's action.")
    guardrails: SiteGuardrails | None = Field(
        default=None,
        description="A site file's own guardrails (docs/site-format.md); built-in scenarios "
        "keep theirs in floor/guardrail_sets/ instead.",
    )

    _source_dir: Path | None = PrivateAttr(default=None)
    """The folder of the YAML file it was loaded from: a site's groups and guardrails sit
    beside it (``groups-<name>.npz``, ``guardrails-<name>.yaml``), as the built-in ones do in
    ``floor/scenarios``, so an onboarded site's bundle is usable by every room as it is."""

    @property
    def source_dir(self) -> Path | None:
        return self._source_dir

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        # Messages start with the field at fault: floor.config prints them after the file name.
        if len(set(self.destinations)) != len(self.destinations):
            raise ValueError("destinations: ids must be unique")
        if self.eject_chutes < len(self.destinations) and self.eject_chutes < 1:
            raise ValueError("eject_chutes: a site needs at least one eject chute")
        if self.day_hours > 24:
            raise ValueError(f"day_hours: must be <= 24 (got {self.day_hours:g})")
        ticks_per_interval = self.interval_minutes * 60 / self.tick_seconds
        if abs(ticks_per_interval - round(ticks_per_interval)) > 1e-9:
            raise ValueError(
                f"interval_minutes: must be a whole number of ticks of tick_seconds "
                f"({self.interval_minutes:g} min / {self.tick_seconds:g} s)"
            )
        intervals = self.day_hours * 60 / self.interval_minutes
        if abs(intervals - round(intervals)) > 1e-9:
            raise ValueError(
                f"day_hours: must be a whole number of intervals "
                f"({self.day_hours:g} h / {self.interval_minutes:g} min)"
            )
        if self.guardrails is not None:
            problem = check_against_site(self.guardrails, self.eject_chutes, self.destinations)
            if problem is not None:
                raise ValueError(problem)
        return self

    def guardrail_set(self) -> GuardrailSet | None:
        """The site file's own guardrails as a set (``None`` for a scenario without them)."""
        if self.guardrails is None:
            return None
        return self.guardrails.to_set(self.name, self.eject_chutes, self.destinations)

    @cached_property
    def n_destinations(self) -> int:
        return len(self.destinations)

    @cached_property
    def ticks_per_interval(self) -> int:
        return round(self.interval_minutes * 60 / self.tick_seconds)

    @cached_property
    def n_intervals(self) -> int:
        return round(self.day_hours * 60 / self.interval_minutes)

    @cached_property
    def n_ticks(self) -> int:
        return self.n_intervals * self.ticks_per_interval

    @cached_property
    def chute_ids(self) -> tuple[str, ...]:
        return tuple(f"C{index + 1:03d}" for index in range(self.eject_chutes))

    @cached_property
    def destination_index(self) -> dict[str, int]:
        return {destination: index for index, destination in enumerate(self.destinations)}

    def interval_start(self, interval_index: int, day_start: datetime | None = None) -> datetime:
        """Wall time at which ``interval_index`` starts on a day starting at ``day_start``."""
        start = day_start or self.day_start
        return start + timedelta(minutes=self.interval_minutes * interval_index)


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name (``small``, ``large``) or a YAML file by path."""
    scenario = load_yaml_model(
        name_or_path, Scenario, SCENARIO_DIR, BUILTIN_SCENARIOS, ScenarioError, "scenario"
    )
    if str(name_or_path) not in BUILTIN_SCENARIOS:
        scenario._source_dir = Path(name_or_path).resolve().parent
    return scenario
