"""The pre-gate (``training/pregate.py``): the gate's per-kind test on validation days
before the rule's mean, on synthetic day rows."""

from __future__ import annotations

from typing import Any

import pytest

from training.pregate import ensemble_members, excess, lowest_mean, ranked, score

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


def test_an_ensemble_takes_only_passing_candidates_when_two_pass() -> None:
    # the large site's two-seed run: the third member in the rule's order failed the pre-gate
    passing = {k: (0.015, 0.035) for k in KINDS}
    failing = {**passing, "rule-concentrated": (0.03, 0.05)}
    scores = {
        "a": score(_rows(passing)),
        "b": score(_rows({k: (0.016, 0.036) for k in KINDS})),
        "c": score(_rows(failing)),
        "d": score(_rows({k: (0.017, 0.037) for k in KINDS})),
    }
    order = ranked(scores, PROPORTIONAL)
    assert order == ["a", "b", "d", "c"]
    assert ensemble_members(order, scores, PROPORTIONAL, 3) == ["a", "b", "d"]
    assert ensemble_members(["a", "c", "b"], scores, PROPORTIONAL, 3) == ["a", "b"]
    assert ensemble_members(order, scores, PROPORTIONAL, 2) == ["a", "b"]


def test_with_fewer_than_two_passing_the_ensemble_is_the_ranked_head() -> None:
    failing = {k: (0.03, 0.05) for k in KINDS}
    scores = {
        "a": score(_rows({k: (0.015, 0.035) for k in KINDS})),
        "c": score(_rows(failing)),
        "e": score(_rows({**failing, "validation": (0.04, 0.06)})),
    }
    order = ranked(scores, PROPORTIONAL)
    assert ensemble_members(order, scores, PROPORTIONAL, 3) == ["a", "c", "e"]
    assert ensemble_members(order, scores, PROPORTIONAL, 2) == ["a", "c"]


def test_the_second_ensemble_takes_the_lowest_means_whatever_their_excess() -> None:
    passing = score(_rows({k: (0.01, 0.03) for k in KINDS}))
    failing = score(_rows({**{k: (0.004, 0.01) for k in KINDS}, "rule-concentrated": (0.03, 0.06)}))
    assert excess(failing, PROPORTIONAL) > 0 and failing["mean"] < passing["mean"]
    scores = {"a": passing, "b": failing, "c": score(_rows({k: (0.015, 0.035) for k in KINDS}))}
    order = ranked(scores, PROPORTIONAL)
    assert order == ["a", "c", "b"]
    assert ensemble_members(order, scores, PROPORTIONAL, 2) == ["a", "c"]  # passing only
    assert lowest_mean(order, scores, 2) == ["b", "a"]  # by mean: the failing one first
    assert lowest_mean(order, scores, 5) == ["b", "a", "c"]
