"""The validator on its own: a valid allocation passes, each hand-built violation is named."""

from __future__ import annotations

import numpy as np

from decision.state import IDLE
from decision.validate import validate_allocation
from floor.guardrails import GuardrailSet

GUARDRAILS = GuardrailSet(
    version="t-1",
    scenario="t",
    total_eject_chutes=6,
    min_chutes_per_destination=1,
    max_chutes_per_destination=3,
    max_moves_per_interval=1,
)
PREVIOUS = np.array([0, 0, 1, 2, IDLE, IDLE])
AVAILABLE = np.array([True, True, True, True, True, False])


def _check(owner: list[int], counts: list[int], **kwargs: object) -> list[str]:
    return validate_allocation(
        np.array(owner),
        np.array(counts),
        GUARDRAILS,
        kwargs.pop("available", AVAILABLE),  # type: ignore[arg-type]
        PREVIOUS,
        **kwargs,  # type: ignore[arg-type]
    )


def test_valid_allocation_passes() -> None:
    assert _check([0, 0, 1, 2, 1, IDLE], [2, 2, 1]) == []


def test_owner_out_of_range() -> None:
    assert "not a destination" in _check([0, 0, 1, 2, 7, IDLE], [2, 1, 1])[0]


def test_out_of_service_chute_assigned() -> None:
    problems = _check([0, 0, 1, 2, IDLE, 1], [2, 2, 1])
    assert any("out of service" in p for p in problems)


def test_counts_do_not_match_map() -> None:
    problems = _check([0, 0, 1, 2, IDLE, IDLE], [2, 2, 1])
    assert any("counts say 2, map has 1" in p for p in problems)


def test_over_budget() -> None:
    # 4 chutes in service if two more fail; the map still uses 5.
    available = np.array([True, True, True, True, True, False])
    problems = _check([0, 0, 1, 2, 1, IDLE], [2, 2, 1], budget=4, available=available)
    assert any("budget is 4" in p for p in problems)


def test_over_maximum() -> None:
    guardrails = GUARDRAILS.model_copy(update={"max_chutes_per_destination": 1})
    problems = validate_allocation(
        np.array([0, 0, 1, 2, IDLE, IDLE]), np.array([2, 1, 1]), guardrails, AVAILABLE, PREVIOUS
    )
    assert any("maximum 1" in p for p in problems)


def test_under_minimum_when_budget_allows() -> None:
    problems = _check([0, 0, 1, IDLE, IDLE, IDLE], [2, 1, 0])
    assert any("destination 2: 0 chutes, minimum 1" in p for p in problems)


def test_minimum_yields_to_budget() -> None:
    # Only 2 chutes in service for 3 destinations with minimum 1: one may go without.
    available = np.array([True, False, True, False, False, False])
    assert _check([0, IDLE, 1, IDLE, IDLE, IDLE], [1, 1, 0], available=available) == []


def test_too_many_moves() -> None:
    problems = _check([1, 0, 0, 2, 1, IDLE], [2, 2, 1])
    assert any("moves, max_moves_per_interval is 1" in p for p in problems)
    assert _check([1, 0, 0, 2, 1, IDLE], [2, 2, 1], ignore_move_cap=True) == []


def test_shape_mismatch() -> None:
    problems = validate_allocation(
        np.array([0, 0]), np.array([2, 0, 0]), GUARDRAILS, AVAILABLE, PREVIOUS
    )
    assert "shape mismatch" in problems[0]
