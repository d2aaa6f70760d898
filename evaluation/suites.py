"""Evaluation suites: named lists of days, each rebuilt in any process from its coordinates.

A suite day is fixed by ``(scenario, suite, index, seed)``: :func:`suite_days` lists a
suite's days (``SuiteDay``: the index plus the group, seed and, for history days, the date
and history seed it stands for) and :func:`build_day` rebuilds one as the twin's input with
its group label. The suites:

- ``group``: a multinomial sample of each day-type group, per seed. These days are drawn from
  the group's own shares, so they flatter any policy that plans with those shares.
- ``spike``: a group day plus one top-half destination at ``SPIKE_FACTOR`` its volume.
- ``concentration``: a group day where one big destination (drawn by seed among the top
  tenth of the plan's shares, ``twin.spike.big_destination``) is grown
  until it takes ``CONCENTRATION_SHARE`` of the day's volume, every other destination as it
  was (``twin.spike.with_concentration``); the plan stays the group's (nobody forecast the
  promotion). History-fitted groups cannot hold a day type seen only a couple of times in the
  history, so the gate checks it on every site.
- ``shifted``: a group day with ``SHIFT_FRACTION`` of destinations' volumes shuffled among
  them (``twin.spike.with_shifted_mix``).
- ``history``: the primary suite. ``history_days`` (default 60) consecutive real days of the
  site's own history right after the period its groups were fitted on (the groups' ``meta``:
  seed 2025, fitted on 2021-01-01..2024-12-31, so from 2025-01-01), from ``twin.history``.
- ``drift-0``, ``drift-25``, ``drift-50``, ``drift-100``: the group days with that fraction of
  destinations' volumes reassigned (:func:`with_drift`: each chosen destination receives
  another chosen destination's whole arrival series; ``drift-0`` is the group days as they
  are). The plan stays the group's: nobody forecast the drift.
- ``other``: the same dates as ``history``, each from another site's history with the same
  layout (history seeds ``other_seeds``, default 11, 12, 13, in turn).

Group-based days carry the group they were sampled from (``group_kind`` ``group``); history
and other days the hindsight nearest group (``group_kind`` ``nearest``), whose share is also
their ``expected_share``: what only the oracle-plan reference row is handed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np

from floor.daytypes import DayTypeGroups
from floor.scenario import Scenario
from floor.seeds import evaluation_seed
from twin.day import DayDemand
from twin.fit import GroupFit, site_history
from twin.groups import sample_day
from twin.history import generate_history, to_demand
from twin.spike import concentrated, with_shifted_mix, with_spike

SPIKE_FACTOR = 4.0
"""Stress days: one destination at four times its usual volume."""
CONCENTRATION_SHARE = 0.2
"""Concentration days: one destination takes a fifth of the day (one big customer's promotion;
the built-in large site's rarest day type has its top destination at about that share)."""
SHIFT_FRACTION = 0.3
"""Out-of-distribution days: 30% of destinations swap volumes."""
DRIFT = {"drift-0": 0.0, "drift-25": 0.25, "drift-50": 0.5, "drift-100": 1.0}
"""Plan-mismatch suites: the fraction of destinations whose volumes are reassigned."""
HISTORY_SUITES = ("history", "other")
"""Suites of real history days, labelled with their nearest group."""
GROUP_SUITES = ("group", "spike", "concentration", "shifted", *DRIFT)
"""Suites of group samples, labelled with the group they were sampled from."""
SUITES = ("group", "spike", "concentration", "shifted", "history", *DRIFT, "other")
"""Every suite, in the order ``--suite all`` runs and tables them."""
DEFAULT_HISTORY_DAYS = 60
DEFAULT_OTHER_SEEDS = (11, 12, 13)

DESCRIPTIONS = {
    "group": "multinomial samples of each day-type group (drawn from the plan's own shares)",
    "spike": f"group days plus one top-half destination at {SPIKE_FACTOR:g}x its volume",
    "concentration": f"group days with one big (top-tenth) destination grown to "
    f"{CONCENTRATION_SHARE:.0%} of the day's volume (plan unchanged)",
    "shifted": f"group days with {SHIFT_FRACTION:.0%} of destinations' volumes shuffled",
    "history": "held-out real days of the site's own history after the groups' fit period; "
    "groups are each day's hindsight nearest group",
    **{
        name: f"group days with {fraction:.0%} of destinations' volumes reassigned to other "
        "destinations (plan unchanged)"
        for name, fraction in DRIFT.items()
    },
    "other": "the history suite's dates from other sites' histories (same layout); groups "
    "are each day's hindsight nearest group of this site's groups",
}


class SuiteError(ValueError):
    """An unknown suite or a suite option that cannot work."""


@dataclass(frozen=True)
class SuiteOptions:
    """What sizes the suites."""

    groups: tuple[int, ...]
    """Groups of the group-based suites."""
    seeds: int = 5
    """Days per group in the group-based suites (evaluation seeds 0..seeds-1)."""
    history_days: int = DEFAULT_HISTORY_DAYS
    """Days of the ``history`` and ``other`` suites."""
    other_seeds: tuple[int, ...] = DEFAULT_OTHER_SEEDS
    """History seeds of the ``other`` suite's sites; the site's own seed is refused."""


@dataclass(frozen=True)
class SuiteDay:
    """One day of a suite, as coordinates any process can rebuild it from."""

    suite: str
    index: int
    seed: int
    """The day's sampling seed and the twin's seed."""
    group: int = -1
    """The group sampled from (group-based suites); -1 for history days (found when built)."""
    day: str | None = None
    """ISO date of a history day."""
    history_seed: int | None = None
    """The history the day comes from (``history``: the site's own; ``other``: another)."""


@dataclass(frozen=True)
class BuiltDay:
    """A suite day as the twin's input, with its group label."""

    demand: DayDemand
    group: int
    group_kind: str
    """``group``: sampled from that group; ``nearest``: a real day's hindsight nearest group."""


def parse_suites(text: str) -> list[str]:
    """``all`` or a comma list of suite names, in the order given, without repeats."""
    names: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if not name:
            continue
        expanded = list(SUITES) if name == "all" else [name]
        for suite in expanded:
            if suite not in SUITES:
                raise SuiteError(f"unknown suite {suite!r}: use 'all' or {', '.join(SUITES)}")
            if suite not in names:
                names.append(suite)
    if not names:
        raise SuiteError("no suite named: use 'all' or a comma list")
    return names


def suite_days(suite: str, groups: DayTypeGroups, options: SuiteOptions) -> list[SuiteDay]:
    """The days of ``suite``, in a fixed order; ``groups`` are the site's groups."""
    if suite in GROUP_SUITES:
        pairs = [(g, k) for g in options.groups for k in range(options.seeds)]
        return [
            SuiteDay(suite, index, evaluation_seed(k), group=g)
            for index, (g, k) in enumerate(pairs)
        ]
    if suite not in HISTORY_SUITES:
        raise SuiteError(f"unknown suite {suite!r}: use one of {', '.join(SUITES)}")
    if options.history_days < 1:
        raise SuiteError("history days must be at least 1")
    history = site_history(groups)
    if suite == "history":
        seeds = [history.seed] * options.history_days
    else:
        if not options.other_seeds:
            raise SuiteError("the other suite needs at least one history seed")
        if history.seed in options.other_seeds:
            raise SuiteError(f"history seed {history.seed} is the site's own, not another's")
        n = len(options.other_seeds)
        seeds = [options.other_seeds[i % n] for i in range(options.history_days)]
    return [
        SuiteDay(
            suite,
            index,
            evaluation_seed(index),
            day=(history.end + timedelta(days=index)).isoformat(),
            history_seed=history_seed,
        )
        for index, history_seed in enumerate(seeds)
    ]


def with_drift(demand: DayDemand, fraction: float, seed: int) -> DayDemand:
    """``demand`` with ``fraction`` of its destinations' volumes reassigned.

    ``round(fraction * D)`` destinations (at least 2 when ``fraction > 0``) are picked at
    random and each receives the whole per-tick arrival series of the next one in a random
    cycle through them, so every picked destination ends up with another's volume and
    intraday shape (a derangement), while total volume and the site's wave stay the day's.
    For one seed the picked sets are nested: drift-25's destinations are among drift-50's.
    ``expected_share`` is left as it was: the plan did not see the drift coming.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("fraction must be in [0, 1]")
    if fraction == 0.0:
        return demand
    d = demand.arrivals.shape[1]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD21F7]))
    order = rng.permutation(d)
    chosen = order[: min(d, max(2, round(fraction * d)))]
    arrivals = demand.arrivals.copy()
    arrivals[:, chosen] = demand.arrivals[:, np.roll(chosen, 1)]
    return replace(
        demand,
        arrivals=arrivals,
        label=f"{demand.label} drift {fraction:.0%}",
        packages=None,
    )


def build_day(
    scenario: Scenario,
    groups: DayTypeGroups,
    suite: str,
    group: int,
    seed: int,
    day: str | None = None,
    history_seed: int | None = None,
) -> BuiltDay:
    """Rebuild one suite day; the same arguments give the same day in any process."""
    if suite in HISTORY_SUITES:
        if day is None or history_seed is None:
            raise SuiteError(f"a {suite} day needs its date and history seed")
        historical = next(generate_history(scenario, date.fromisoformat(day), 1, history_seed))
        nearest = GroupFit(groups).nearest(historical.counts)
        share = groups.expected_share(nearest)
        demand = to_demand(historical, scenario, seed, expected_share=share)
        if suite == "other":
            demand = replace(demand, label=f"{demand.label} (history seed {history_seed})")
        return BuiltDay(demand, nearest, "nearest")
    if suite not in GROUP_SUITES:
        raise SuiteError(f"unknown suite {suite!r}: use one of {', '.join(SUITES)}")
    demand = sample_day(groups, group, scenario, seed=seed)
    if suite == "spike":
        # the spiking destination is drawn among the top half: a customer big enough to matter
        rank = seed % max(1, scenario.n_destinations // 2)
        destination = int(np.argsort(-demand.expected_share.mean(axis=0), kind="stable")[rank])
        demand = with_spike(demand, destination, SPIKE_FACTOR, seed=seed)
    elif suite == "concentration":
        demand = concentrated(demand, CONCENTRATION_SHARE, seed)
    elif suite == "shifted":
        demand = with_shifted_mix(demand, SHIFT_FRACTION, seed=seed)
    elif suite in DRIFT:
        demand = with_drift(demand, DRIFT[suite], seed=seed)
    return BuiltDay(demand, group, "group")


def build_suite_day(scenario: Scenario, groups: DayTypeGroups, day: SuiteDay) -> BuiltDay:
    return build_day(scenario, groups, day.suite, day.group, day.seed, day.day, day.history_seed)


__all__ = [
    "CONCENTRATION_SHARE",
    "DESCRIPTIONS",
    "DRIFT",
    "GROUP_SUITES",
    "HISTORY_SUITES",
    "SHIFT_FRACTION",
    "SPIKE_FACTOR",
    "SUITES",
    "BuiltDay",
    "SuiteDay",
    "SuiteError",
    "SuiteOptions",
    "build_day",
    "build_suite_day",
    "parse_suites",
    "suite_days",
    "with_drift",
]
