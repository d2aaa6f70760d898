"""Day-level KPIs of the twin: the numbers the paper compares policies on.

Counts are integers so conservation (``inducted == sorted + unsorted``) is exact; the rates are
derived from them. ``recirculated`` counts events (a package recirculated three times counts
three), ``recirculation_amount`` counts distinct packages: the paper reports both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DayKPIs:
    """What one simulated day (or the part simulated so far) achieved."""

    inducted: int
    """Distinct packages inducted: first inductions only (re-inductions are the same parcels)."""
    sorted: int
    """Packages ejected into a chute of their destination."""
    recirculated: int
    """Recirculation events: every time a package went round again (or to exception)."""
    recirculation_rate: float
    """``recirculated / inducted``: the paper's headline metric."""
    recirculation_amount: int
    """Distinct packages recirculated at least once."""
    throughput_per_hour: float
    """``sorted / day_hours``: sorted packages per hour of the operating day."""
    unsorted: int
    """``inducted - sorted``: still in the system at the end of the day, or in exception."""
    exceptions: int
    """Packages that used up ``max_attempts`` inductions and went to manual handling."""
    chute_moves: int
    """Chute reassignments (owner changes, to or from idle included)."""

    @classmethod
    def from_counts(
        cls,
        *,
        inducted: int,
        sorted: int,
        recirculated: int,
        recirculation_amount: int,
        exceptions: int,
        chute_moves: int,
        day_hours: float,
    ) -> DayKPIs:
        """Derive the rates from the integer counts, so they can never disagree."""
        return cls(
            inducted=inducted,
            sorted=sorted,
            recirculated=recirculated,
            recirculation_rate=recirculated / inducted if inducted else 0.0,
            recirculation_amount=recirculation_amount,
            throughput_per_hour=sorted / day_hours,
            unsorted=inducted - sorted,
            exceptions=exceptions,
            chute_moves=chute_moves,
        )

    def to_dict(self) -> dict[str, int | float]:
        """Plain JSON-ready mapping, field order preserved."""
        return asdict(self)
