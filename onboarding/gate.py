"""The release gate: a learned policy is recommended only where it is no worse than the
proportional heuristic, in mean and in its worst group, on held-out history and on every
stress suite. Anything else recommends proportional, and says where and by how much.

Pure functions over summaries (``evaluation.report.summarize``), so the rule is tested on
synthetic tables without running a day.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from evaluation.report import headline

BASELINE = "proportional"
"""What the learned policy must not be worse than, everywhere."""


@dataclass(frozen=True)
class Shortfall:
    """One place the learned policy is worse than the baseline (rates as fractions)."""

    suite: str
    measure: str
    """``mean`` or ``worst group``."""
    learned: float
    baseline: float

    @property
    def by(self) -> float:
        return self.learned - self.baseline

    def line(self) -> str:
        return (
            f"{self.suite}: {self.measure} recirculation {100 * self.learned:.2f}% vs "
            f"{BASELINE} {100 * self.baseline:.2f}% (+{100 * self.by:.2f} points)"
        )


@dataclass(frozen=True)
class GateVerdict:
    """What the bundle recommends, and why."""

    recommended: str
    """``learned`` or ``proportional``."""
    shortfalls: tuple[Shortfall, ...] = field(default_factory=tuple)
    checked: tuple[str, ...] = field(default_factory=tuple)
    """The suites the gate looked at."""

    @property
    def passed(self) -> bool:
        return self.recommended == "learned"

    def explanation(self) -> str:
        if self.passed:
            return (
                f"the learned policy is <= {BASELINE} in mean and worst group on every suite "
                f"checked ({', '.join(self.checked)})"
            )
        lines = [f"the learned policy is worse than {BASELINE} on {len(self.shortfalls)} check(s):"]
        return "\n".join(lines + [f"- {s.line()}" for s in self.shortfalls])


def release_gate(
    summaries: Mapping[str, Mapping[str, object]], learned: str, tolerance: float = 0.0
) -> GateVerdict:
    """The verdict on ``learned`` over every suite's summary (suite -> policy -> summary).

    ``tolerance`` (in rate units) forgives differences that small; 0 is the rule as written.
    A suite without both policies is a shortfall (the gate never passes on missing evidence).
    """
    shortfalls: list[Shortfall] = []
    for suite, summary in summaries.items():
        if learned not in summary or BASELINE not in summary:
            shortfalls.append(Shortfall(suite, "missing rows", 1.0, 0.0))
            continue
        l_mean, _, l_worst = headline(dict(summary), learned)
        b_mean, _, b_worst = headline(dict(summary), BASELINE)
        if l_mean > b_mean + tolerance:
            shortfalls.append(Shortfall(suite, "mean", l_mean, b_mean))
        if l_worst > b_worst + tolerance:
            shortfalls.append(Shortfall(suite, "worst group", l_worst, b_worst))
    recommended = "proportional" if shortfalls or not summaries else "learned"
    return GateVerdict(recommended, tuple(shortfalls), tuple(summaries))


__all__ = ["BASELINE", "GateVerdict", "Shortfall", "release_gate"]
