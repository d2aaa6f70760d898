"""The twin as a PettingZoo parallel environment: one agent per destination, one step per interval.

An agent's action is the number of chutes it requests for the next interval. Requests are not
an allocation: their sum may exceed the chutes in service, so by default they go through the
decision engine itself (:class:`EngineAllocator`: values peaked at each request, then the
CP-SAT projection under the site's guardrails, the validator and the fallback), exactly as a
served policy's values would. ``grant_in_request_order`` is a cheaper greedy stand-in that
keeps only the budget. Observations come from ``decision.features.observe`` and rewards from
``twin.reward`` so training sees what the worker serves and learns what the trainers learn.
The plan in the observations is the honest one (``twin.closed_loop.day_plan``: the calendar
forecast, updated online from the arrivals seen so far by ``decision.belief``), as the engine's
policies see it; ``oracle_plan=True`` hands agents the day's own plan, for a labelled reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium
import numpy as np
import numpy.typing as npt
from pettingzoo import ParallelEnv

from decision.belief import PlanBelief
from decision.build import build_engine
from decision.features import N_FEATURES, FeatureScale, ObservationBatch, observe
from decision.policies import target_values
from decision.state import IDLE, SiteState
from floor.plan import DayPlan
from floor.scenario import Scenario
from floor.site import Site, load_site
from twin.closed_loop import day_plan
from twin.day import DayDemand
from twin.reward import destination_rewards
from twin.sim import IntervalResult, SortationTwin

IntArray = npt.NDArray[np.int64]
ObsArray = npt.NDArray[np.float32]

DaySampler = Callable[[np.random.Generator], DayDemand]
"""Draws one day of demand from the environment's seeded generator."""
Allocator = Callable[[IntArray, SiteState], IntArray]
"""Turns ``[D]`` chute requests and the current state into a feasible ``[C]`` owner map."""


class RequestPolicy:
    """A policy whose values peak at the agents' requests: the engine then finds the feasible
    allocation nearest to them under the guardrails."""

    name = "requests"
    version = "env"

    def __init__(self, levels: int) -> None:
        self.levels = levels
        self.requests = np.zeros(0, dtype=np.int64)

    def start_day(self, plan: DayPlan) -> None:
        return None

    def values(self, state: SiteState, observations: ObservationBatch) -> npt.NDArray[np.float64]:
        targets = np.minimum(self.requests, self.levels - 1).astype(np.float64)
        return target_values(targets, self.levels)


class EngineAllocator:
    """Requests -> chute map through the decision engine (guardrails, validator, fallback)."""

    def __init__(self, site: Site) -> None:
        self.requests = RequestPolicy(site.scenario.max_chutes_per_destination + 1)
        self.engine = build_engine(site, self.requests)
        self.scenario = site.scenario

    def start_day(self, plan: DayPlan) -> None:
        """A new episode: the engine forgets the last day's solver hint (reproducible resets)."""
        self.engine.start_day(plan)

    def __call__(self, requests: IntArray, state: SiteState) -> IntArray:
        self.requests.requests = np.asarray(requests, dtype=np.int64)
        start = self.scenario.interval_start(state.interval_index)
        return self.engine.decide(state, interval_start=start, now=start).owner


def grant_in_request_order(requests: IntArray, state: SiteState) -> IntArray:
    """A greedy, move-averse stand-in for the engine that keeps the budget and nothing else
    (no guardrail minimums, maximums or move cap): cheap, for experiments that want it.

    1. Budget: the chutes in service. Destinations are served in order of request size
       (largest first, ties to the lower index) and each gets ``min(request, what is left)``,
       so the granted in-service chutes never exceed the budget.
    2. A destination keeps the in-service chutes it already holds, up to its grant (lowest
       chute index first): every kept chute is a move avoided.
    3. Missing chutes come from idle in-service chutes first, then from chutes other
       destinations released; released chutes nobody needs become idle.
    Out-of-service chutes keep their owner: they cannot eject anyway, and moving them would
    cost a move for nothing when they come back.
    """
    requests = np.maximum(np.asarray(requests, dtype=np.int64), 0)
    owner = state.chute_owner.copy()
    available = state.chute_available
    remaining = int(available.sum())
    order = np.argsort(-requests, kind="stable")
    grant = np.zeros_like(requests)
    for destination in order.tolist():
        grant[destination] = min(int(requests[destination]), remaining)
        remaining -= int(grant[destination])

    released: list[int] = []
    missing: dict[int, int] = {}
    for destination in order.tolist():
        held = np.flatnonzero((owner == destination) & available).tolist()
        keep = int(grant[destination])
        released.extend(held[keep:])
        if keep > len(held):
            missing[destination] = keep - len(held)
    for chute in released:
        owner[chute] = IDLE
    pool = np.flatnonzero((state.chute_owner == IDLE) & available).tolist() + released
    cursor = 0
    for destination, count in missing.items():
        for chute in pool[cursor : cursor + count]:
            owner[chute] = destination
        cursor += count
    return owner


class SortationEnv(ParallelEnv[str, ObsArray, int]):  # type: ignore[misc]
    """One simulated day per episode; every agent terminates after the last interval.

    Reward of destination ``d`` for an interval: ``twin.reward.destination_rewards``.

    Args:
        scenario: the site.
        day_sampler: draws each episode's day from the environment's generator.
        allocator: turns requests into a chute map; defaults to the decision engine under
            the scenario's own guardrails (:class:`EngineAllocator`).
        oracle_plan: observe the day's own plan instead of the honest one (reference only).
    """

    metadata: ClassVar[dict[str, Any]] = {"name": "chuteflow_sortation_v0", "render_modes": []}

    def __init__(
        self,
        scenario: Scenario,
        day_sampler: DaySampler,
        allocator: Allocator | None = None,
        oracle_plan: bool = False,
    ) -> None:
        self.scenario = scenario
        self.oracle_plan = oracle_plan
        self._belief: PlanBelief | None = None
        self.day_sampler = day_sampler
        self.allocator = allocator or EngineAllocator(load_site(scenario))
        self.possible_agents: list[str] = list(scenario.destinations)
        self.agents: list[str] = []
        self.scale = FeatureScale.of(scenario)
        self._observation_spaces = {
            agent: gymnasium.spaces.Box(-np.inf, np.inf, shape=(N_FEATURES,), dtype=np.float32)
            for agent in self.possible_agents
        }
        self._action_spaces = {
            agent: gymnasium.spaces.Discrete(scenario.max_chutes_per_destination + 1)
            for agent in self.possible_agents
        }
        self._rng = np.random.default_rng()
        self._twin: SortationTwin | None = None
        self.last_result: IntervalResult | None = None
        """The full result of the last interval, for callers that want more than ``infos``."""

    def observation_space(self, agent: str) -> gymnasium.spaces.Box:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> gymnasium.spaces.Discrete:
        return self._action_spaces[agent]

    @property
    def twin(self) -> SortationTwin:
        """The running day (branch it to look ahead without touching the episode)."""
        if self._twin is None:
            raise RuntimeError("call reset() first")
        return self._twin

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, ObsArray], dict[str, dict[str, Any]]]:
        """Start a new day. A seed fixes the day and the floor's randomness; without one the
        environment's generator continues, so a seeded sequence of episodes is reproducible."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        demand = self.day_sampler(self._rng)
        twin_seed = int(self._rng.integers(2**31))
        self._twin = SortationTwin(self.scenario, demand, seed=twin_seed)
        plan = day_plan(demand, oracle=self.oracle_plan)
        self._belief = PlanBelief.of(plan)
        if isinstance(self.allocator, EngineAllocator):
            self.allocator.start_day(plan)
        self.agents = list(self.possible_agents)
        self.last_result = None
        observations = self._observations(self._twin.site_state())
        infos: dict[str, dict[str, Any]] = {agent: {} for agent in self.agents}
        return observations, infos

    def step(
        self, actions: dict[str, int]
    ) -> tuple[
        dict[str, ObsArray],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """Allocate from the requests, simulate one interval, score it.

        An agent missing from ``actions`` requests the chutes it holds now.
        """
        twin = self.twin
        if not self.agents:
            raise RuntimeError("episode is over: call reset()")
        state = twin.site_state()
        held = state.held()
        requests = np.array(
            [
                int(actions.get(agent, held[index]))
                for index, agent in enumerate(self.possible_agents)
            ],
            dtype=np.int64,
        )
        result = twin.run_interval(self.allocator(requests, state))
        self.last_result = result
        agents = self.agents
        reward = destination_rewards(result, self.scale)
        rewards = {
            agent: float(reward[index])
            for index, agent in enumerate(self.possible_agents)
            if agent in agents
        }
        over = twin.done
        terminations = dict.fromkeys(agents, over)
        truncations = dict.fromkeys(agents, False)
        site = result.totals()
        infos = {
            agent: {
                "sorted": int(result.sorted[index]),
                "recirculated": int(result.recirculated[index]),
                "first_inductions": int(result.first_inductions[index]),
                "interval": site,
            }
            for index, agent in enumerate(self.possible_agents)
            if agent in agents
        }
        observations = self._observations(twin.site_state())
        if over:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def _observations(self, state: SiteState) -> dict[str, ObsArray]:
        if self._belief is not None:
            state = self._belief.plan_state(state)
        batch = observe(state, self.scale)
        return {
            agent: batch[index]
            for index, agent in enumerate(self.possible_agents)
            if agent in self.agents
        }

    def render(self) -> None:
        """No rendering: the twin's output is its KPIs and events."""
        return None

    def close(self) -> None:
        self._twin = None
