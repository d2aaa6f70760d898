"""The pre-gate (``training/pregate.py``): the gate's per-kind test on validation days
before the rule's mean, on synthetic day rows."""

from __future__ import annotations

from typing import Any

import pytest

from training.pregate import excess, forward_selection, ranked, score

KINDS = ("rule-sampled", "rule-drifted", "rule-concentrated", "validation")


def _rows(rates: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """Two groups per kind: (group 0's rate, group 1's rate)."""
    return [
        {"day_kind": kind, "group": g, "recirculation_rate": rate}
        for kind, pair in rates.items()
        for g, rate in enumerate(pair)
    ]


PROPORTIONAL = score(_rows({k: (0.02, 0.04) for k in KINDS}))


def test_score_is_per_kind_and_over_all_days() -> None:
    s = score(_rows({"rule-sampled": (0.01, 0.03), "rule-concentrated": (0.05, 0.09)}))
    assert s["mean"] == pytest.approx((0.01 + 0.03 + 0.05 + 0.09) / 4)
    assert s["worst_group"] == pytest.approx((0.03 + 0.09) / 2)  # group 1 over both kinds
    assert s["by_kind"]["rule-concentrated"] == pytest.approx({"mean": 0.07, "worst_group": 0.09})
    assert s["by_kind"]["rule-sampled"] == pytest.approx({"mean": 0.02, "worst_group": 0.03})


def test_excess_is_the_largest_shortfall_over_kinds_and_measures() -> None:
    rates = {k: (0.01, 0.03) for k in KINDS}
    assert excess(score(_rows(rates)), PROPORTIONAL) == pytest.approx(-0.01)
    rates["rule-concentrated"] = (0.015, 0.046)  # worst group 0.6 points above proportional's
    assert excess(score(_rows(rates)), PROPORTIONAL) == pytest.approx(0.006)


def test_excess_needs_a_shared_kind() -> None:
    with pytest.raises(ValueError, match="share no kind"):
        excess(score(_rows({"rule-sampled": (0.0, 0.0)})), score(_rows({"validation": (0, 0)})))


def test_a_lower_mean_that_fails_the_pre_gate_ranks_after_every_passing_candidate() -> None:
    # "sharp": best mean over all days, but worse than proportional on concentrated days (the
    # large site's three-seed pick); "safe": a higher mean, no worse anywhere
    sharp = {**{k: (0.005, 0.01) for k in KINDS}, "rule-concentrated": (0.03, 0.05)}
    safe = {k: (0.015, 0.035) for k in KINDS}
    worse = {**{k: (0.005, 0.01) for k in KINDS}, "rule-concentrated": (0.06, 0.09)}
    scores = {n: score(_rows(r)) for n, r in (("sharp", sharp), ("safe", safe), ("worse", worse))}
    assert scores["sharp"]["mean"] < scores["safe"]["mean"]
    assert ranked(scores, PROPORTIONAL) == ["safe", "sharp", "worse"]  # failing ones by excess


def test_among_passing_candidates_the_rule_is_unchanged() -> None:
    # the lowest mean; within 0.01 points (TIE) of it, the lower worst group first
    a = score(_rows({k: (0.010, 0.030) for k in KINDS}))
    b = score(_rows({k: (0.0112, 0.0289) for k in KINDS}))  # mean 0.005 points above a's
    c = score(_rows({k: (0.012, 0.031) for k in KINDS}))
    assert ranked({"a": a, "b": b, "c": c}, PROPORTIONAL) == ["b", "a", "c"]


def test_when_none_passes_the_closest_to_passing_comes_first() -> None:
    near = {k: (0.021, 0.04) for k in KINDS}  # 0.1 points over on mean
    far = {k: (0.01, 0.06) for k in KINDS}  # best mean, 2 points over on worst group
    scores = {"far": score(_rows(far)), "near": score(_rows(near))}
    assert ranked(scores, PROPORTIONAL) == ["near", "far"]


def _uniform(low: float, high: float) -> dict[str, Any]:
    return score(_rows({k: (low, high) for k in KINDS}))


class _Ensembles:
    """Made-up ensemble scores by member set (what onboarding measures on validation days),
    recording each batch it was asked for."""

    def __init__(self, table: dict[frozenset[str], dict[str, Any]]) -> None:
        self.table = table
        self.asked: list[list[tuple[str, ...]]] = []

    def __call__(self, trials: Any) -> list[dict[str, Any]]:
        self.asked.append(list(trials))
        return [self.table[frozenset(t)] for t in trials]


def test_forward_selection_adds_the_best_joiner_and_stops_when_nothing_helps() -> None:
    scores = {"a": _uniform(0.015, 0.035), "b": _uniform(0.016, 0.036), "c": _uniform(0.03, 0.05)}
    measured = _Ensembles(
        {
            frozenset("ab"): _uniform(0.014, 0.034),
            frozenset("ac"): _uniform(0.013, 0.033),  # a failing member that helps: it joins
            frozenset("abc"): _uniform(0.0135, 0.0335),  # b would pull it back: it stops
        }
    )
    members, final, steps = forward_selection(
        "a", ["a", "b", "c"], scores, PROPORTIONAL, 10, measured
    )
    assert members == ("a", "c")
    assert final == measured.table[frozenset("ac")]
    assert measured.asked == [[("a", "b"), ("a", "c")], [("a", "c", "b")]]
    assert [s["added"] for s in steps] == ["c", None]
    assert steps[0]["trials"]["c"]["excess"] < 0


def test_forward_selection_never_keeps_an_ensemble_that_fails_the_pre_gate() -> None:
    scores = {"a": _uniform(0.015, 0.035), "b": _uniform(0.016, 0.036)}
    # a lower mean overall, but worse than proportional on the concentrated days
    worse_there = score(_rows({**{k: (0.01, 0.02) for k in KINDS}, KINDS[2]: (0.03, 0.05)}))
    measured = _Ensembles({frozenset("ab"): worse_there})
    members, final, steps = forward_selection("a", ["a", "b"], scores, PROPORTIONAL, 3, measured)
    assert members == ("a",) and final == scores["a"]
    assert steps[0]["added"] is None


def test_forward_selection_stops_at_its_size_and_when_the_pool_is_empty() -> None:
    scores = {n: _uniform(0.015, 0.035) for n in "abc"}
    better = {frozenset(m): _uniform(0.02 - len(m) / 1000, 0.03) for m in ("ab", "ac", "abc")}
    members, _, steps = forward_selection(
        "a", ["a", "b", "c"], scores, PROPORTIONAL, 2, _Ensembles(better)
    )
    assert members == ("a", "b") and len(steps) == 1  # b before c on a tie, by name
    members, _, steps = forward_selection(
        "a", ["a", "b", "c"], scores, PROPORTIONAL, 5, _Ensembles(better)
    )
    assert members == ("a", "b", "c") and len(steps) == 2
    assert forward_selection("a", ["a"], scores, PROPORTIONAL, 3, _Ensembles({}))[0] == ("a",)
