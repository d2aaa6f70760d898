"""The pre-gate (``docs/policy-selection.md``, amendments of 2026-12-03): the release gate's
own test, proportional in mean and worst group on each kind of validation day, before the
rule's mean over all of them. Onboarding's pick ranks its candidates by it
(``onboarding.pipeline``), and ``train --checkpoint gate`` its run's networks.

Why a pre-gate: the rule's mean over all validation days let a candidate come first while it
was worse than proportional on one kind of day (the concentrated ones on the large site); the
gate, which checks each suite on its own, then refused it. Ranking the candidates that pass
the same test on validation days first keeps the pick and the gate asking the same question,
on disjoint days.

Pure functions over day rows (``day_kind``, ``group``, ``recirculation_rate``: what
``onboarding.tasks.run_day_job`` and ``training.selection.rule_rows`` return), so the rule is
tested on synthetic rows without running a day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from training.selection import TIE

Score = dict[str, Any]
"""``mean`` and ``worst_group`` over all the rule's days, and ``by_kind``: the same two per
kind of validation day."""


def _mean_and_worst(rows: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    per_group: dict[int, list[float]] = {}
    for row in rows:
        per_group.setdefault(int(row["group"]), []).append(float(row["recirculation_rate"]))
    rates = [r for values in per_group.values() for r in values]
    return {
        "mean": sum(rates) / len(rates),
        "worst_group": max(sum(v) / len(v) for v in per_group.values()),
    }


def score(rows: Sequence[Mapping[str, Any]]) -> Score:
    """One policy's score: over all its rows, and per ``day_kind``."""
    kinds = sorted({str(row["day_kind"]) for row in rows})
    return {
        **_mean_and_worst(rows),
        "by_kind": {k: _mean_and_worst(r for r in rows if r["day_kind"] == k) for k in kinds},
    }


def excess(candidate: Score, baseline: Score) -> float:
    """The largest amount, in rate units, by which ``candidate`` is worse than ``baseline`` in
    mean or worst group on any kind of day both were run on (<= 0: it passes the pre-gate).

    Raises:
        ValueError: the two share no kind of day (the pre-gate never passes on no evidence).
    """
    shared = sorted(set(candidate["by_kind"]) & set(baseline["by_kind"]))
    if not shared:
        raise ValueError("the candidate and the baseline share no kind of validation day")
    return max(
        float(candidate["by_kind"][k][m]) - float(baseline["by_kind"][k][m])
        for k in shared
        for m in ("mean", "worst_group")
    )


def ranked(scores: Mapping[str, Score], baseline: Score) -> list[str]:
    """Candidates in the rule's order: those that pass the pre-gate by mean over all rule days
    (within ``TIE``, the lower worst group first), then the others by excess."""
    excesses = {name: excess(s, baseline) for name, s in scores.items()}
    passing = [n for n in scores if excesses[n] <= 0.0]
    failing = sorted((n for n in scores if excesses[n] > 0.0), key=lambda n: (excesses[n], n))
    order: list[str] = []
    left = sorted(passing, key=lambda n: (scores[n]["mean"], n))
    while left:  # the lowest mean, but within TIE of it the lower worst group goes first
        best = scores[left[0]]["mean"]
        close = [n for n in left if scores[n]["mean"] <= best + TIE]
        first = min(close, key=lambda n: (scores[n]["worst_group"], scores[n]["mean"], n))
        order.append(first)
        left.remove(first)
    return order + failing


def ensemble_members(
    order: Sequence[str], scores: Mapping[str, Score], baseline: Score, size: int
) -> list[str]:
    """An ensemble's members from candidates in :func:`ranked`'s order (one algorithm's):
    those that pass the pre-gate, up to ``size``; when fewer than two pass, the first ``size``
    as ranked (amendment of 2026-12-03 04:27).

    Why only passing ones: averaging in a network that is worse than proportional on one kind
    of day pulls the ensemble toward it there; on the large site such an ensemble lost to its
    own best member on the pre-gate and was not used."""
    passing = [n for n in order if excess(scores[n], baseline) <= 0.0]
    return passing[:size] if len(passing) >= 2 else list(order[:size])


def lowest_mean(names: Sequence[str], scores: Mapping[str, Score], size: int) -> list[str]:
    """The ``size`` candidates with the lowest mean over all the rule's days, whatever their
    excess: the second ensemble's members (amendment of 2026-12-03 17:15).

    Why a second ensemble: a member worse than proportional on one kind of day can still
    average, among enough others, into an ensemble that is not; on the large site the ten best
    of twenty runs by mean passed the pre-gate as a whole (-0.63 points) with a lower mean than
    the passing-only ensemble (1.11% vs 1.17%). The ensemble is judged whole, like any
    candidate, so one that the weak member drags over proportional is not used."""
    return sorted(names, key=lambda n: (float(scores[n]["mean"]), n))[:size]


__all__ = ["Score", "ensemble_members", "excess", "lowest_mean", "ranked", "score"]
