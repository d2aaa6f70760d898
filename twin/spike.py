"""Stress days: one destination receives several times its usual volume, or a set share of it.

The seed document's day: a customer orders 200% of a month in a day. A spike is added to a
sampled day so the rest of the day stays a realistic member of its group; the planner's
``expected_share`` is left as it was, because nobody forecast the spike.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from floor.scenario import Scenario
from twin.day import DayDemand


def with_spike(demand: DayDemand, destination: int, factor: float, seed: int) -> DayDemand:
    """``demand`` with ``destination``'s arrivals multiplied by ``factor`` in expectation.

    Extra packages follow that destination's own intraday shape: each tick gets a Poisson
    number of additional packages with mean ``(factor - 1) * arrivals``.
    """
    if factor < 1.0:
        raise ValueError("a spike multiplies volume by a factor >= 1")
    rng = np.random.default_rng(seed)
    arrivals = demand.arrivals.copy()
    base = arrivals[:, destination].astype(np.float64)
    if base.sum() == 0:
        # A destination that was quiet all day spikes evenly over the day.
        base = np.full_like(base, max(demand.total, 1) / arrivals.size)
    arrivals[:, destination] += rng.poisson((factor - 1.0) * base)
    name = demand.scenario.destinations[destination]
    return replace(
        demand,
        arrivals=arrivals,
        label=f"{demand.label} spike {name} x{factor:g}",
        packages=None,
    )


def with_shifted_mix(demand: DayDemand, fraction: float, seed: int) -> DayDemand:
    """``demand`` with the volumes of a ``fraction`` of destinations shuffled among them.

    An out-of-distribution day: total volume and intraday shape stay those of the group, but
    the destinations that are busy today are not the ones the planner expects (a customer
    moved its volume to another lane). ``expected_share`` keeps the plan's view.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError("fraction must be in (0, 1]")
    rng = np.random.default_rng(seed)
    d = demand.arrivals.shape[1]
    chosen = rng.choice(d, size=max(2, round(fraction * d)), replace=False)
    shuffled = rng.permutation(chosen)
    arrivals = demand.arrivals.copy()
    arrivals[:, chosen] = demand.arrivals[:, shuffled]
    return replace(
        demand,
        arrivals=arrivals,
        label=f"{demand.label} mix shifted {fraction:.0%}",
        packages=None,
    )


def concentration_extra(demand: DayDemand, destination: int, share: float) -> int:
    """Packages ``destination`` must gain for its share of the day's volume to reach ``share``
    while every other destination keeps its volume: ``b + E = share * (T + E)``."""
    if not 0.0 < share < 1.0:
        raise ValueError("a concentration share must be in (0, 1)")
    total = float(demand.total)
    own = float(demand.arrivals[:, destination].sum())
    return max(0, round((share * total - own) / (1.0 - share)))


def with_concentration(
    demand: DayDemand, destination: int, share: float, seed: int, planned: bool = False
) -> DayDemand:
    """``demand`` with ``destination`` grown until it takes ``share`` of the day's volume.

    The floor's "one big customer runs a promotion": one destination suddenly takes a fifth of
    the day while every other destination's arrivals stay exactly as they were (their relative
    shape is untouched; the day's total grows by the promotion's packages). The extra packages
    follow the destination's own intraday shape (a multinomial over ticks weighted by its
    arrivals; the day's shape if it had none), so the share is reached to within one package.
    A destination already at or above ``share`` is left as it was.

    ``planned=False`` (the stress suite): ``expected_share`` stays the group's, because nobody
    forecast the promotion. ``planned=True`` (an announced promotion, used in training so a
    policy also sees plans with one dominant destination): the plan's column for
    ``destination`` is scaled by the same factor and each interval's row renormalized.
    """
    extra = concentration_extra(demand, destination, share)
    arrivals = demand.arrivals.copy()
    label = f"{demand.label} concentration {demand.scenario.destinations[destination]} {share:.0%}"
    if extra == 0:
        return replace(demand, label=label)
    weights = arrivals[:, destination].astype(np.float64)
    if weights.sum() == 0:
        weights = arrivals.sum(axis=1).astype(np.float64)
    if weights.sum() == 0:
        weights = np.ones(arrivals.shape[0])
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC0C3]))
    own = float(arrivals[:, destination].sum())
    arrivals[:, destination] += rng.multinomial(extra, weights / weights.sum())
    expected = demand.expected_share
    if planned:
        factor = (own + extra) / max(own, 1.0)
        expected = expected.copy()
        expected[:, destination] *= factor
        expected /= expected.sum(axis=1, keepdims=True)
        label += " (planned)"
    return replace(demand, arrivals=arrivals, expected_share=expected, label=label, packages=None)


BIG_FRACTION = 0.1
"""The big customers: the top tenth of the plan's destinations (at least two)."""


def big_destination(demand: DayDemand, seed: int, below: float | None = None) -> int:
    """A destination drawn by ``seed`` among the top :data:`BIG_FRACTION` of the plan's shares
    (rank ``seed mod n``): a customer big enough that its promotion is plausible. A small one
    grown to a fifth of the day would be a sixty-fold day no floor sees (on the large site a
    top-tenth destination holds 2-10% of a day, so a fifth is 2-10 times its volume).

    With ``below``, only those of them whose share of this day's volume is under ``below``
    count (a concentration to that share must change the day; on a site of few destinations
    the largest may already hold it). If none is, all of them, as without ``below``.
    """
    d = demand.scenario.n_destinations
    n = min(d, max(2, round(BIG_FRACTION * d)))
    order = np.argsort(-demand.expected_share.mean(axis=0), kind="stable")[:n]
    if below is not None:
        own = demand.arrivals.sum(axis=0) / max(demand.total, 1)
        under = order[own[order] < below]
        if len(under):
            order = under
    return int(order[seed % len(order)])


def concentrated(demand: DayDemand, share: float, seed: int) -> DayDemand:
    """The concentration stress day: :func:`big_destination` by ``seed`` (among those still
    under ``share``) grown to ``share`` by :func:`with_concentration`, the plan unchanged. One
    definition for the evaluation suite and onboarding's selection days."""
    destination = big_destination(demand, seed, below=share)
    return with_concentration(demand, destination, share, seed=seed)


SPIKE_RANK = 10
"""The demo's spike hits the 11th-largest destination: big enough to matter, small enough that
the static plan gave it few chutes."""
SPIKE_FACTOR = 4.0


def spike_day(scenario_name: str, seed: int) -> tuple[Scenario, int, DayDemand, int]:
    """(scenario, day-type group, the spike day, the spiking destination)."""
    from floor.daytypes import default_groups  # here: with_spike alone needs none of them
    from floor.scenario import load_scenario
    from twin.groups import sample_day

    scenario = load_scenario(scenario_name)
    groups = default_groups(scenario)
    busiest = int(np.argmax(groups.volume_mean))
    base = sample_day(groups, busiest, scenario, seed=seed)
    share = base.expected_share.mean(axis=0)
    rank = min(SPIKE_RANK, scenario.n_destinations - 1)
    destination = int(np.argsort(-share, kind="stable")[rank])
    return scenario, busiest, with_spike(base, destination, SPIKE_FACTOR, seed=seed), destination
