"""Stress days: one destination receives several times its usual volume.

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
