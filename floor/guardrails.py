"""Guardrails: the operator's hard limits on any allocation, versioned and loaded from YAML.

A policy only *values* chute counts; the guardrails say which counts are allowed at all. Every
allocation event records ``GuardrailSet.version``, so an audit can tell which limits a plan was
held to. The projection, the repair fallback and the validator read the limits through the
same two functions here (:meth:`GuardrailSet.bounds` and :func:`effective_minimums`), so they
cannot disagree on what "valid" means.

Priority when the limits cannot all hold at once (e.g. many chutes out of service, or a
destination that lost its only chute and the move cap is already spent):

1. the budget (in-service chutes, never more than ``total_eject_chutes``) always holds;
2. per-destination maximums always hold (lowering a count never costs a move);
3. the move cap holds (unless the caller waives it, e.g. for the first set-up of a day);
4. per-destination minimums hold as far as 1-3 allow; :func:`effective_minimums` says exactly
   how far, deterministically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from floor.config import load_yaml_model
from floor.errors import ChuteflowError

IntArray = npt.NDArray[np.int64]

GUARDRAIL_DIR = Path(__file__).parent / "guardrail_sets"
BUILTIN_GUARDRAILS = ("small", "large")


class GuardrailError(ChuteflowError):
    """A guardrail set that cannot be used; the message names the file (or set) and the field."""


class GuardrailSet(BaseModel):
    """One site's limits on allocations. Frozen: a change is a new ``version``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(min_length=1, description="Recorded on every allocation event.")
    scenario: str = Field(min_length=1, description="The site (scenario name) these are for.")
    total_eject_chutes: int = Field(gt=0, description="Eject chutes on the site; a hard budget.")
    min_chutes_per_destination: int = Field(
        default=0, ge=0, description="Chutes every destination keeps (0 where C < D)."
    )
    min_overrides: dict[str, int] = Field(
        default_factory=dict, description="Per-destination minimums that replace the default."
    )
    max_chutes_per_destination: int = Field(
        ge=0, description="Most chutes one destination may hold (a spike cannot take the floor)."
    )
    max_overrides: dict[str, int] = Field(
        default_factory=dict, description="Per-destination maximums that replace the default."
    )
    max_moves_per_interval: int = Field(
        ge=0,
        description="Chutes that may gain a new destination per interval (idle -> destination "
        "counts; destination -> idle does not: releasing needs no relabelling).",
    )
    destinations: tuple[str, ...] = Field(
        default=(),
        description="The site's destination order; required when an override is set, so "
        "overrides keyed by id can be turned into per-index arrays without the scenario.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> GuardrailSet:
        if self.min_chutes_per_destination > self.max_chutes_per_destination:
            raise ValueError("min_chutes_per_destination exceeds max_chutes_per_destination")
        for field, overrides in (
            ("min_overrides", self.min_overrides),
            ("max_overrides", self.max_overrides),
        ):
            for destination, n in overrides.items():
                if n < 0:
                    raise ValueError(f"{field}.{destination}: must be >= 0")
        if (self.min_overrides or self.max_overrides) and not self.destinations:
            raise ValueError("destinations: required when min_overrides or max_overrides is set")
        if len(set(self.destinations)) != len(self.destinations):
            raise ValueError("destinations: ids must be unique")
        if self.destinations:
            known = set(self.destinations)
            for field, overrides in (
                ("min_overrides", self.min_overrides),
                ("max_overrides", self.max_overrides),
            ):
                unknown = sorted(set(overrides) - known)
                if unknown:
                    raise ValueError(f"{field}: unknown destination {unknown[0]}")
            low, high = self._arrays(len(self.destinations))
            bad = np.flatnonzero(low > high)
            if bad.size:
                raise ValueError(f"{self.destinations[int(bad[0])]}: minimum exceeds maximum")
        return self

    def _arrays(self, n_destinations: int) -> tuple[IntArray, IntArray]:
        low = np.full(n_destinations, self.min_chutes_per_destination, dtype=np.int64)
        high = np.full(n_destinations, self.max_chutes_per_destination, dtype=np.int64)
        if self.destinations:
            index = {destination: i for i, destination in enumerate(self.destinations)}
            for destination, n in self.min_overrides.items():
                low[index[destination]] = n
            for destination, n in self.max_overrides.items():
                high[index[destination]] = n
        return low, high

    def bounds(self, n_destinations: int) -> tuple[IntArray, IntArray]:
        """``(min [D], max [D])`` chutes per destination, overrides applied.

        Raises:
            GuardrailError: the set names its destinations and ``n_destinations`` differs.
        """
        if self.destinations and len(self.destinations) != n_destinations:
            raise GuardrailError(
                f"guardrails {self.version}: written for {len(self.destinations)} destinations, "
                f"used with {n_destinations}"
            )
        return self._arrays(n_destinations)

    def move_cap(self, ignore: bool = False) -> int | None:
        """``max_moves_per_interval``, or ``None`` (no cap) when ``ignore`` waives it.

        The cap exists because every move closes a chute while an associate relabels it in
        the middle of the shift. The first set-up of a day (``SiteState.is_day_setup``: an
        empty floor before the shift) labels chutes before any package flows, so nothing is
        interrupted and every chute may be assigned at once. The projection, the repair
        fallback and the validator all take the cap from here, so they waive it alike.
        """
        return None if ignore else self.max_moves_per_interval

    def check_against(self, scenario_destinations: Sequence[str], n_chutes: int) -> None:
        """Fail fast if this set cannot be used on a site with these destinations and chutes.

        Raises:
            GuardrailError: one line naming the set and the problem.
        """
        where = f"guardrails {self.version}"
        scenario_destinations = tuple(scenario_destinations)
        if self.total_eject_chutes != n_chutes:
            raise GuardrailError(
                f"{where}: total_eject_chutes is {self.total_eject_chutes}, the site has {n_chutes}"
            )
        if self.destinations and self.destinations != scenario_destinations:
            raise GuardrailError(f"{where}: destinations differ from the site's destinations")
        known = set(scenario_destinations)
        for field, overrides in (
            ("min_overrides", self.min_overrides),
            ("max_overrides", self.max_overrides),
        ):
            unknown = sorted(set(overrides) - known)
            if unknown:
                raise GuardrailError(f"{where}: {field}: unknown destination {unknown[0]}")
        low, _ = self.bounds(len(scenario_destinations))
        if int(low.sum()) > n_chutes:
            raise GuardrailError(
                f"{where}: minimums need {int(low.sum())} chutes, the site has {n_chutes}"
            )


def effective_minimums(
    minimums: IntArray, previous_counts: IntArray, budget: int, max_moves: int | None
) -> IntArray:
    """[D] the per-destination minimums that can hold this interval (equal to ``minimums``
    whenever they all can).

    Built deterministically so the projection, the repair and the validator agree:

    1. a destination keeps, toward its minimum, what it already holds (costs no move);
    2. if that exceeds the budget (chutes went out of service), the largest are lowered one
       chute at a time (ties: the highest index first) until it fits: the budget beats
       minimums;
    3. the rest is raised one chute at a time while chutes and moves remain, always the
       destination with the fewest chutes first (ties: lowest index), so coverage spreads
       before any destination gets its second chute.

    The result is itself a feasible allocation (within budget, at most ``max_moves`` gains,
    never above a maximum since ``minimums <= maximums``). ``max_moves=None`` waives the cap.
    """
    previous = np.maximum(previous_counts.astype(np.int64), 0)
    result = np.minimum(minimums.astype(np.int64), previous)
    budget = max(int(budget), 0)
    if int(minimums.sum()) <= budget and (
        max_moves is None or int(np.maximum(minimums - previous, 0).sum()) <= max_moves
    ):
        return minimums.astype(np.int64).copy()
    n = result.shape[0]
    reverse = np.arange(n)[::-1]
    while int(result.sum()) > budget:
        # argmax on the reversed array finds the highest index among the largest.
        result[n - 1 - int(np.argmax(result[reverse]))] -= 1
    # After steps 1-2 every destination still short holds no more than before, so each
    # chute raised here is a gain (a move).
    moves = 0
    while int(result.sum()) < budget and (max_moves is None or moves < max_moves):
        short = result < minimums
        if not short.any():
            break
        result[int(np.argmin(np.where(short, result, np.iinfo(np.int64).max)))] += 1
        moves += 1
    return result


def load_guardrails(path_or_name: str | Path) -> GuardrailSet:
    """A shipped guardrail set by name (``small``, ``large``) or a YAML file by path.

    Raises:
        GuardrailError: one line naming the file and the field at fault.
    """
    return load_yaml_model(
        path_or_name,
        GuardrailSet,
        GUARDRAIL_DIR,
        BUILTIN_GUARDRAILS,
        GuardrailError,
        "guardrail set",
    )


__all__ = [
    "BUILTIN_GUARDRAILS",
    "GuardrailError",
    "GuardrailSet",
    "effective_minimums",
    "load_guardrails",
]
