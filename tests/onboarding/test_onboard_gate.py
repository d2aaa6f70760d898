"""The release gate on synthetic tables: passes only at <= proportional everywhere, and says
where and by how much otherwise."""

from __future__ import annotations

from evaluation.report import summarize
from onboarding.gate import release_gate


def _rows(policy: str, per_group: dict[int, float], kind: str = "group") -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for group, rate in per_group.items():
        rows.append(
            {
                "policy": policy,
                "group": group,
                "group_kind": kind,
                "recirculation_rate": rate,
                "throughput_per_hour": 100.0,
                "recirculation_amount": 1,
                "unsorted": 0,
            }
        )
    return rows


def _summary(
    learned: dict[int, float], proportional: dict[int, float], kind: str = "group"
) -> dict[str, object]:
    rows = _rows("learned", learned, kind) + _rows("proportional", proportional, kind)
    return summarize(rows)


def test_gate_passes_when_learned_is_no_worse_anywhere() -> None:
    summaries = {
        "history": _summary({0: 0.10, 1: 0.20}, {0: 0.12, 1: 0.20}, "nearest"),
        "spike": _summary({0: 0.30, 1: 0.25}, {0: 0.30, 1: 0.40}),
    }
    verdict = release_gate(summaries, "learned")
    assert verdict.passed and verdict.recommended == "learned"
    assert verdict.shortfalls == ()
    assert verdict.checked == ("history", "spike")


def test_gate_refuses_and_says_by_how_much() -> None:
    summaries = {
        "history": _summary({0: 0.10, 1: 0.20}, {0: 0.12, 1: 0.22}, "nearest"),
        # better mean (0.20 vs 0.25) but a worse worst group (0.35 vs 0.30)
        "drift-50": _summary({0: 0.05, 1: 0.35}, {0: 0.20, 1: 0.30}),
    }
    verdict = release_gate(summaries, "learned")
    assert not verdict.passed and verdict.recommended == "proportional"
    assert [(s.suite, s.measure) for s in verdict.shortfalls] == [("drift-50", "worst group")]
    shortfall = verdict.shortfalls[0]
    assert abs(shortfall.by - 0.05) < 1e-12
    text = verdict.explanation()
    assert (
        "drift-50: worst group recirculation 35.00% vs proportional 30.00% (+5.00 points)" in text
    )


def test_gate_refuses_a_worse_mean_and_missing_evidence() -> None:
    summaries = {
        "group": _summary({0: 0.32, 1: 0.31}, {0: 0.30, 1: 0.32}),
        "shifted": summarize(_rows("learned", {0: 0.1})),
    }
    verdict = release_gate(summaries, "learned")
    assert verdict.recommended == "proportional"
    measures = {(s.suite, s.measure) for s in verdict.shortfalls}
    assert measures == {("group", "mean"), ("shifted", "missing rows")}
    assert not release_gate({}, "learned").passed
