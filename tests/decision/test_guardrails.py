"""Guardrail sets: shipped defaults load, bad files fail with one line, unusable sets are caught."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from floor.errors import ChuteflowError
from floor.guardrails import GuardrailError, GuardrailSet, effective_minimums, load_guardrails
from floor.scenario import load_scenario


@pytest.mark.parametrize("name", ["small", "large"])
def test_shipped_sets_fit_their_scenarios(name: str) -> None:
    guardrails = load_guardrails(name)
    scenario = load_scenario(name)
    assert guardrails.version.startswith(f"{name}-")
    assert guardrails.scenario == name
    guardrails.check_against(scenario.destinations, scenario.eject_chutes)
    low, high = guardrails.bounds(scenario.n_destinations)
    assert int(high.max()) <= scenario.max_chutes_per_destination
    assert int(low.sum()) <= scenario.eject_chutes


def test_small_site_promises_no_minimum() -> None:
    assert load_guardrails("small").min_chutes_per_destination == 0


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "g.yaml"
    path.write_text(text)
    return path


BASE = "version: t-1\nscenario: t\ntotal_eject_chutes: 4\nmax_chutes_per_destination: 2\n"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("max_moves_per_interval: -1\n", "max_moves_per_interval"),
        ("max_moves_per_interval: 2\nbogus: 1\n", "bogus"),
        ("max_moves_per_interval: 2\nmin_chutes_per_destination: 3\n", "exceeds"),
        ("max_moves_per_interval: 2\nmax_overrides: {A: 1}\n", "destinations"),
        (
            "max_moves_per_interval: 2\ndestinations: [A, B]\nmin_overrides: {C: 1}\n",
            "unknown destination C",
        ),
        ("max_moves_per_interval: 2\ndestinations: [A, B]\nmin_overrides: {A: 3}\n", "A"),
    ],
)
def test_bad_files_fail_with_one_line_naming_file_and_field(
    tmp_path: Path, extra: str, needle: str
) -> None:
    path = _write(tmp_path, BASE + extra)
    with pytest.raises(GuardrailError) as caught:
        load_guardrails(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    assert needle in message
    assert isinstance(caught.value, ChuteflowError)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(GuardrailError, match="no such guardrail set"):
        load_guardrails(tmp_path / "absent.yaml")
    with pytest.raises(GuardrailError, match="not valid YAML"):
        load_guardrails(_write(tmp_path, "version: [unclosed\n"))
    with pytest.raises(GuardrailError, match="mapping"):
        load_guardrails(_write(tmp_path, "- a\n"))


def _set(**fields: object) -> GuardrailSet:
    base: dict[str, object] = {
        "version": "t-1",
        "scenario": "t",
        "total_eject_chutes": 4,
        "max_chutes_per_destination": 3,
        "max_moves_per_interval": 2,
    }
    return GuardrailSet.model_validate(base | fields)


def test_check_against_catches_unusable_sets() -> None:
    with pytest.raises(GuardrailError, match="minimums need 6"):
        _set(min_chutes_per_destination=2).check_against(["A", "B", "C"], 4)
    with pytest.raises(GuardrailError, match="total_eject_chutes"):
        _set().check_against(["A"], 5)
    with pytest.raises(GuardrailError, match="differ"):
        _set(destinations=("A", "B"), max_overrides={"A": 1}).check_against(["A", "C"], 4)
    _set(destinations=("A", "B"), max_overrides={"A": 1}).check_against(["A", "B"], 4)


def test_overrides_become_arrays_in_destination_order() -> None:
    guardrails = _set(
        destinations=("A", "B", "C"),
        min_chutes_per_destination=1,
        min_overrides={"C": 0},
        max_overrides={"B": 1},
    )
    low, high = guardrails.bounds(3)
    assert low.tolist() == [1, 1, 0]
    assert high.tolist() == [3, 1, 3]
    with pytest.raises(GuardrailError):
        guardrails.bounds(4)


def test_guardrail_set_is_frozen() -> None:
    guardrails = _set()
    with pytest.raises(ValueError, match="frozen"):
        setattr(guardrails, "version", "other")  # noqa: B010 (bypass the type checker on purpose)


def test_effective_minimums_are_the_minimums_when_they_fit() -> None:
    low = np.array([1, 1, 1])
    assert effective_minimums(low, np.array([1, 0, 2]), 5, 1).tolist() == [1, 1, 1]


def test_budget_beats_minimums_spreading_coverage() -> None:
    # 2 chutes in service, minimums of 2 each: keep what is held, lower the largest first.
    assert effective_minimums(np.array([2, 2, 2]), np.array([2, 2, 2]), 2, 0).tolist() == [
        1,
        1,
        0,
    ]
    # Raising spends moves on the destinations with the fewest chutes first.
    assert effective_minimums(np.array([2, 2, 2]), np.array([1, 0, 0]), 6, 2).tolist() == [
        1,
        1,
        1,
    ]
    assert effective_minimums(np.array([1, 1]), np.array([0, 0]), 5, None).tolist() == [1, 1]
