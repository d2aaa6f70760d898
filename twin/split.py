"""Splitting a site's history in time: fit, validation, held-out (the last weeks).

The rule, so nothing is tuned on the days that judge it:

- **held-out** = every history day in the last ``heldout_weeks`` weeks, counted back from the
  last day (``(last - 7*heldout_weeks, last]``); only the final evaluation and the release
  gate read them;
- **validation** = the ``validation_weeks`` weeks before that; candidate selection and the
  ensemble are chosen on them;
- **fit** = everything earlier; day-type groups are fitted and policies trained on them.

Windows are calendar weeks, not day counts, so every window spans each weekday (weekly
seasonality is the strongest day-type signal) even when the site is closed on some days or
the history has gaps. A split is *usable* when each window has enough days:

- fit: at least :data:`MIN_FIT_DAYS` (eight weeks) so every day-type group gets several days;
- validation and held-out: at least :data:`MIN_WINDOW_DAYS` days each, and every weekday the
  site operates on (any weekday present in the fit days) at least once.

With the defaults (four weeks each, the 28 + 28 days ``chuteflow site onboard`` holds out) a
history needs about sixteen weeks of days; two years is what onboarding is designed for (groups
then also see a peak season).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

DEFAULT_HELDOUT_WEEKS = 4
DEFAULT_VALIDATION_WEEKS = 4
MIN_FIT_DAYS = 56
"""Fewest fit days: eight weeks, a few days for each of the groups a site usually has."""
MIN_WINDOW_DAYS = 5
"""Fewest days in the validation and in the held-out window."""
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Split:
    """A history's days in three time-ordered windows, and whether they are enough."""

    fit: tuple[date, ...]
    validation: tuple[date, ...]
    heldout: tuple[date, ...]
    heldout_weeks: int
    validation_weeks: int
    validation_start: date | None
    """First calendar day of the validation window (``None`` for an empty history)."""
    heldout_start: date | None
    """First calendar day of the held-out window."""
    min_fit_days: int = MIN_FIT_DAYS
    """Fewest fit days this split needs (``chuteflow site onboard --quick`` asks fewer)."""
    min_window_days: int = MIN_WINDOW_DAYS
    """Fewest days in the validation and in the held-out window."""

    def problems(self) -> list[str]:
        """One line per reason the split is not enough (empty when usable)."""
        out = []
        if len(self.fit) < self.min_fit_days:
            out.append(
                f"too little history for the split: {len(self.fit)} fit days before the last "
                f"{self.validation_weeks + self.heldout_weeks} weeks, need >= {self.min_fit_days}"
            )
        operating = {d.weekday() for d in self.fit}
        for name, days in (("validation", self.validation), ("held-out", self.heldout)):
            if len(days) < self.min_window_days:
                out.append(
                    f"too little history for the split: {len(days)} {name} days, "
                    f"need >= {self.min_window_days}"
                )
                continue
            missing = sorted(operating - {d.weekday() for d in days})
            if missing:
                out.append(
                    f"{name} window ({days[0]}..{days[-1]}) has no "
                    f"{', '.join(WEEKDAYS[w] for w in missing)}: every operating weekday "
                    "must be judged"
                )
        return out

    @property
    def usable(self) -> bool:
        return not self.problems()

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary: counts and date ranges of each window."""

        def span(days: tuple[date, ...]) -> dict[str, object]:
            return {
                "days": len(days),
                "first": days[0].isoformat() if days else None,
                "last": days[-1].isoformat() if days else None,
            }

        return {
            "heldout_weeks": self.heldout_weeks,
            "validation_weeks": self.validation_weeks,
            "fit": span(self.fit),
            "validation": span(self.validation),
            "heldout": span(self.heldout),
            "usable": self.usable,
            "problems": self.problems(),
        }


def split_history(
    dates: Iterable[date],
    heldout_weeks: int = DEFAULT_HELDOUT_WEEKS,
    validation_weeks: int = DEFAULT_VALIDATION_WEEKS,
    min_fit_days: int = MIN_FIT_DAYS,
    min_window_days: int = MIN_WINDOW_DAYS,
) -> Split:
    """Split history days by the rule in this module's docstring (duplicates count once).

    The one split of the project: ``chuteflow site check`` reports it and ``chuteflow site
    onboard`` (``onboarding.history``) runs on it, so what one calls usable the other uses."""
    if heldout_weeks < 1 or validation_weeks < 1:
        raise ValueError("heldout_weeks and validation_weeks must be >= 1")
    minimums = {"min_fit_days": min_fit_days, "min_window_days": min_window_days}
    days = sorted(set(dates))
    if not days:
        return Split((), (), (), heldout_weeks, validation_weeks, None, None, **minimums)
    last = days[-1]
    heldout_start = last - timedelta(weeks=heldout_weeks) + timedelta(days=1)
    validation_start = heldout_start - timedelta(weeks=validation_weeks)
    return Split(
        fit=tuple(d for d in days if d < validation_start),
        validation=tuple(d for d in days if validation_start <= d < heldout_start),
        heldout=tuple(d for d in days if d >= heldout_start),
        heldout_weeks=heldout_weeks,
        validation_weeks=validation_weeks,
        validation_start=validation_start,
        heldout_start=heldout_start,
        **minimums,
    )


__all__ = [
    "DEFAULT_HELDOUT_WEEKS",
    "DEFAULT_VALIDATION_WEEKS",
    "MIN_FIT_DAYS",
    "MIN_WINDOW_DAYS",
    "Split",
    "split_history",
]
