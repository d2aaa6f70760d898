"""MARL and distributionally robust MARL (DRMARL) for chute allocation, in one file.

One shared Q-network values every chute count for every destination from that destination's
observation (``decision.features``). The joint action is the projection of the summed values
onto the guardrails (value decomposition: joint value = sum of agent values), the same CP-SAT
projection the engine serves with, also for epsilon-greedy exploration: exploring agents get
random values, and the projection keeps the joint action budget-feasible.

Algorithms (``Settings.algo``):

- ``marl``: DQN on days of one typical group (the paper's baseline).
- ``drmarl-exhaustive``: the robust target. From the same floor state, the interval is also
  simulated under every group's demand; the target uses the reward of the worst group
  (``min_g r_g + gamma * max Q(s')``), so the policy learns the worst day type's consequences.
- ``drmarl``: the same target with the worst group predicted by a contextual bandit
  ``Q_CB(s, a, g)`` (``training/predictor.py``) trained once on rollouts under each group,
  then frozen: one simulated branch per step instead of one per group.

Targets use the next state's greedy projected joint action recorded when that state was acted
in (not re-projected at update time): projecting every sampled transition would cost one
CP-SAT solve per row of every batch. Each agent learns its own reward (its recirculations); the
team reward is their sum, so the decomposition is exact in the reward.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from decision.chute_map import map_chutes
from decision.features import FEATURE_NAMES, N_FEATURES, observe
from decision.guardrails import GuardrailSet, load_guardrails
from decision.projection import project
from decision.state import SiteState
from training.mlp import MLP, Adam, huber_grad
from training.predictor import WorstGroupPredictor
from twin.closed_loop import scale_of
from twin.day import DayDemand
from twin.groups import DayTypeGroups, default_groups, sample_day
from twin.scenario import Scenario, load_scenario
from twin.sim import IntervalResult, SortationTwin

Algo = Literal["marl", "drmarl", "drmarl-exhaustive"]
ALGOS: tuple[Algo, ...] = ("marl", "drmarl", "drmarl-exhaustive")
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass
class Settings:
    """Every knob of a training run; written next to the policy it produced."""

    scenario: str = "small"
    """Scenario name or YAML path."""
    algo: Algo = "drmarl"
    """marl, drmarl (predicted worst group) or drmarl-exhaustive (simulate every group)."""
    episodes: int = 300
    """Training days (the paper trains 300 episodes)."""
    train_group: int | None = None
    """marl only: the group to train on; None picks the group with the most historical days."""
    seed: int = 1
    """Seeds the network, exploration and the training days (evaluation uses other seeds)."""
    gamma: float = 0.9
    """Discount per interval; recirculated packages come back within minutes, so a short
    horizon carries the consequences that matter."""
    lr: float = 1e-3
    """Adam learning rate."""
    hidden: int = 64
    """Width of the two hidden layers."""
    batch_transitions: int = 16
    """Intervals per gradient step; each contributes one row per destination."""
    buffer_transitions: int = 5000
    """Replay buffer size in intervals."""
    learning_starts: int = 50
    """Intervals collected before the first gradient step."""
    updates_per_step: int = 2
    """Gradient steps per simulated interval."""
    epsilon_start: float = 0.5
    """Probability that an agent explores (gets random values) at the start."""
    epsilon_end: float = 0.02
    epsilon_fraction: float = 0.6
    """Share of the episodes over which epsilon decays linearly."""
    target_tau: float = 0.02
    """Polyak rate of the target network."""
    reward_scale: float = 1.0
    """Rewards are -recirculations / (mean packages per destination-interval) * this."""
    validate_every: int = 25
    """Episodes between greedy validations; the best validated network is exported."""
    predictor_episodes: int = 20
    """drmarl: rollout days used to fit the worst-group predictor."""
    predictor_epochs: int = 40
    """drmarl: passes over the predictor's data."""
    solver_time_limit_s: float = 0.05
    """CP-SAT time limit per projection, as in serving."""

    @classmethod
    def quick(cls, **overrides: object) -> Settings:
        """A run that finishes in seconds, for tests and smoke checks."""
        tiny: dict[str, object] = {
            "episodes": 4,
            "learning_starts": 5,
            "validate_every": 2,
            "predictor_episodes": 2,
            "predictor_epochs": 3,
            "batch_transitions": 4,
        }
        return cls(**{**tiny, **overrides})  # type: ignore[arg-type]


@dataclass
class Transition:
    obs: FloatArray
    action: IntArray
    reward: FloatArray
    next_obs: FloatArray
    next_greedy: IntArray
    done: bool


@dataclass
class ReplayBuffer:
    """Fixed-size ring buffer of intervals (each holds all destinations' rows)."""

    capacity: int
    n_destinations: int
    obs: FloatArray = field(init=False)
    next_obs: FloatArray = field(init=False)
    action: IntArray = field(init=False)
    next_greedy: IntArray = field(init=False)
    reward: FloatArray = field(init=False)
    done: npt.NDArray[np.float32] = field(init=False)
    size: int = 0
    cursor: int = 0

    def __post_init__(self) -> None:
        c, d = self.capacity, self.n_destinations
        self.obs = np.zeros((c, d, N_FEATURES), dtype=np.float32)
        self.next_obs = np.zeros((c, d, N_FEATURES), dtype=np.float32)
        self.action = np.zeros((c, d), dtype=np.int64)
        self.next_greedy = np.zeros((c, d), dtype=np.int64)
        self.reward = np.zeros((c, d), dtype=np.float32)
        self.done = np.zeros(c, dtype=np.float32)

    def add(self, t: Transition) -> None:
        i = self.cursor
        self.obs[i], self.next_obs[i] = t.obs, t.next_obs
        self.action[i], self.next_greedy[i] = t.action, t.next_greedy
        self.reward[i], self.done[i] = t.reward, float(t.done)
        self.cursor = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)


class Projector:
    """Values -> budget-feasible counts and chute map, exactly as the engine projects."""

    def __init__(self, guardrails: GuardrailSet, time_limit_s: float) -> None:
        self.guardrails = guardrails
        self.time_limit_s = time_limit_s

    def counts(self, values: npt.NDArray[np.float64], state: SiteState) -> IntArray:
        result = project(
            values,
            self.guardrails,
            budget=int(state.chute_available.sum()),
            previous_counts=state.held_available(),
            time_limit_s=self.time_limit_s,
            hint=None,
            ignore_move_cap=state.is_day_setup,
        )
        return result.counts

    def owner(self, counts: IntArray, state: SiteState) -> IntArray:
        owner, _ = map_chutes(counts, state.chute_owner, state.chute_available)
        return owner


def agent_rewards(result: IntervalResult, scale: float) -> FloatArray:
    """Each destination's reward: minus its recirculations, in mean-destination-interval units."""
    return (-result.recirculated / scale).astype(np.float32)


def typical_group(groups: DayTypeGroups) -> int:
    """The group with the most historical days: the "typical year" a plain MARL trains on."""
    return int(np.argmax([len(m) for m in groups.members]))


@dataclass
class TrainResult:
    net: MLP
    curve: list[dict[str, float]]
    validation: list[dict[str, float]]
    wall_seconds: float
    env_steps: int
    branch_steps: int
    predictor_report: dict[str, float] | None = None


class Trainer:
    """Runs one training configuration; see the module docstring for the algorithms."""

    def __init__(
        self, settings: Settings, on_episode: Callable[[int, dict[str, float]], None] | None = None
    ) -> None:
        self.s = settings
        self.scenario: Scenario = load_scenario(settings.scenario)
        self.groups = default_groups(self.scenario)
        self.guardrails = load_guardrails(self.scenario.name)
        self.scale = scale_of(self.scenario)
        self.projector = Projector(self.guardrails, settings.solver_time_limit_s)
        self.levels = self.scenario.max_chutes_per_destination + 1
        self.rng = np.random.default_rng(settings.seed)
        sizes = (N_FEATURES, settings.hidden, settings.hidden, self.levels)
        self.net = MLP.create(sizes, seed=settings.seed)
        self.target = self.net.copy()
        self.optimizer = Adam(self.net.parameters(), lr=settings.lr)
        self.buffer = ReplayBuffer(settings.buffer_transitions, self.scenario.n_destinations)
        self.on_episode = on_episode
        self.env_steps = 0
        self.branch_steps = 0
        self.predictor: WorstGroupPredictor | None = None

    # ----------------------------------------------------------------- acting

    def _values(self, obs: FloatArray) -> npt.NDArray[np.float64]:
        return self.net(obs).astype(np.float64)

    def _explore(
        self, values: npt.NDArray[np.float64], epsilon: float
    ) -> tuple[npt.NDArray[np.float64], bool]:
        mask = np.asarray(self.rng.random(values.shape[0]) < epsilon, dtype=np.bool_)
        if not mask.any():
            return values, False
        explored = values.copy()
        spread = float(np.abs(values).max()) + 1.0
        explored[mask] = self.rng.uniform(-spread, spread, size=(int(mask.sum()), values.shape[1]))
        return explored, True

    def _epsilon(self, episode: int) -> float:
        s = self.s
        horizon = max(1.0, s.epsilon_fraction * s.episodes)
        frac = min(1.0, episode / horizon)
        return s.epsilon_start + frac * (s.epsilon_end - s.epsilon_start)

    # ----------------------------------------------------------------- robust reward

    def _group_days(self, episode: int) -> list[DayDemand]:
        base = 1_000_000 * self.s.seed + 1000 * episode
        return [
            sample_day(self.groups, g, self.scenario, seed=base + 500 + g)
            for g in range(self.groups.n_groups)
        ]

    def _branch_rewards(self, twin: SortationTwin, owner: IntArray, day: DayDemand) -> FloatArray:
        branch = twin.branch(demand=day)
        self.branch_steps += 1
        return agent_rewards(
            branch.run_interval(owner), self.scale.packages_per_destination_interval
        )

    def _robust_reward(
        self,
        twin: SortationTwin,
        owner: IntArray,
        counts: IntArray,
        obs: FloatArray,
        days: list[DayDemand],
    ) -> FloatArray:
        if self.s.algo == "drmarl-exhaustive" or self.predictor is None:
            per_group = [self._branch_rewards(twin, owner, day) for day in days]
            worst = int(np.argmin([r.sum() for r in per_group]))
            return per_group[worst]
        worst = self.predictor.worst_group(obs, counts)
        return self._branch_rewards(twin, owner, days[worst])

    # ----------------------------------------------------------------- learning

    def _update(self) -> float:
        s = self.s
        idx = self.rng.integers(0, self.buffer.size, size=s.batch_transitions)
        b = self.buffer
        d = self.scenario.n_destinations
        obs = b.obs[idx].reshape(-1, N_FEATURES)
        next_obs = b.next_obs[idx].reshape(-1, N_FEATURES)
        action = b.action[idx].reshape(-1)
        next_greedy = b.next_greedy[idx].reshape(-1)
        reward = b.reward[idx].reshape(-1) * np.float32(s.reward_scale)
        not_done = np.repeat(1.0 - b.done[idx], d).astype(np.float32)
        rows = np.arange(obs.shape[0])
        next_q = self.target(next_obs)[rows, next_greedy]
        target = reward + np.float32(s.gamma) * not_done * next_q
        q, activations = self.net.forward(obs)
        error = q[rows, action] - target
        loss, grad_error = huber_grad(error)
        grad_out = np.zeros_like(q)
        grad_out[rows, action] = grad_error
        self.optimizer.step(self.net.backward(activations, grad_out))
        tau = np.float32(s.target_tau)
        for t_param, o_param in zip(self.target.parameters(), self.net.parameters(), strict=True):
            t_param *= 1 - tau
            t_param += tau * o_param
        return loss

    # ----------------------------------------------------------------- episodes

    def _episode_day(self, episode: int) -> tuple[int, DayDemand]:
        s = self.s
        if s.algo == "marl":
            group = s.train_group if s.train_group is not None else typical_group(self.groups)
        else:
            group = int(self.rng.integers(self.groups.n_groups))
        return group, sample_day(self.groups, group, self.scenario, seed=1000 * s.seed + episode)

    def run_episode(self, episode: int) -> dict[str, float]:
        s = self.s
        group, demand = self._episode_day(episode)
        twin = SortationTwin(self.scenario, demand, seed=1000 * s.seed + episode)
        robust = s.algo != "marl"
        days = self._group_days(episode) if robust else []
        epsilon = self._epsilon(episode)
        state = twin.site_state()
        obs = observe(state, self.scale)
        greedy = self.projector.counts(self._values(obs), state)
        losses = []
        while not twin.done:
            values, explored = self._explore(self._values(obs), epsilon)
            counts = self.projector.counts(values, state) if explored else greedy
            owner = self.projector.owner(counts, state)
            reward = self._robust_reward(twin, owner, counts, obs, days) if robust else None
            result = twin.run_interval(owner)
            self.env_steps += 1
            if reward is None:
                reward = agent_rewards(result, self.scale.packages_per_destination_interval)
            next_state = twin.site_state()
            next_obs = observe(next_state, self.scale)
            next_greedy = (
                self.projector.counts(self._values(next_obs), next_state)
                if not twin.done
                else counts
            )
            self.buffer.add(Transition(obs, counts, reward, next_obs, next_greedy, twin.done))
            if self.buffer.size >= s.learning_starts:
                losses += [self._update() for _ in range(s.updates_per_step)]
            state, obs, greedy = next_state, next_obs, next_greedy
        kpis = twin.kpis()
        return {
            "episode": float(episode),
            "group": float(group),
            "epsilon": epsilon,
            "recirculation_rate": kpis.recirculation_rate,
            "loss": float(np.mean(losses)) if losses else float("nan"),
        }

    def validate(self, seeds: int = 1) -> dict[str, float]:
        """Greedy policy on held-out days of every group (or the training group for marl)."""
        from training.policy import MLPPolicy
        from twin.closed_loop import make_engine, run_day

        policy = MLPPolicy(self.net, name=self.s.algo, version="validation")
        engine = make_engine(self.scenario, policy, self.guardrails, self.s.solver_time_limit_s)
        groups = (
            [self.s.train_group if self.s.train_group is not None else typical_group(self.groups)]
            if self.s.algo == "marl"
            else list(range(self.groups.n_groups))
        )
        rates = []
        for g in groups:
            for k in range(seeds):
                day = sample_day(self.groups, g, self.scenario, seed=50_000 + 100 * g + k)
                rates.append(run_day(engine, day, seed=50_000 + k).kpis.recirculation_rate)
        return {"mean": float(np.mean(rates)), "worst": float(np.max(rates))}

    def train(self) -> TrainResult:
        s = self.s
        start = time.perf_counter()
        predictor_report = None
        if s.algo == "drmarl":
            from training.predictor import fit_predictor

            self.predictor, predictor_report = fit_predictor(self)
        curve: list[dict[str, float]] = []
        validation: list[dict[str, float]] = []
        best_score = float("inf")
        best = self.net.copy()
        for episode in range(s.episodes):
            row = self.run_episode(episode)
            curve.append(row)
            last = episode == s.episodes - 1
            if (episode + 1) % s.validate_every == 0 or last:
                v = self.validate()
                v["episode"] = float(episode)
                validation.append(v)
                score = v["worst"] if s.algo != "marl" else v["mean"]
                if score < best_score:
                    best_score, best = score, self.net.copy()
                row["validation_mean"] = v["mean"]
                row["validation_worst"] = v["worst"]
            if self.on_episode is not None:
                self.on_episode(episode, row)
        return TrainResult(
            net=best,
            curve=curve,
            validation=validation,
            wall_seconds=time.perf_counter() - start,
            env_steps=self.env_steps,
            branch_steps=self.branch_steps,
            predictor_report=predictor_report,
        )


def write_run(result: TrainResult, settings: Settings, out: Path, scenario: Scenario) -> Path:
    """Write the ONNX policy, the settings used, the curve and a plot; returns the ONNX path."""
    from training.export import save_onnx

    out.mkdir(parents=True, exist_ok=True)
    name = f"{settings.algo}-{scenario.name}"
    onnx_path = save_onnx(
        result.net,
        out / f"{name}.onnx",
        {
            "policy_name": settings.algo,
            "policy_version": f"{scenario.name}-seed{settings.seed}-ep{settings.episodes}",
            "scenario": scenario.name,
            "features": ",".join(FEATURE_NAMES),
        },
    )
    (out / "settings.json").write_text(json.dumps(asdict(settings), indent=2, sort_keys=True))
    (out / "training_curve.json").write_text(
        json.dumps(
            {
                "curve": result.curve,
                "validation": result.validation,
                "wall_seconds": result.wall_seconds,
                "env_steps": result.env_steps,
                "branch_steps": result.branch_steps,
                "predictor": result.predictor_report,
            },
            indent=1,
        )
    )
    _plot_curve(result, out / "training_curve.png", name)
    return onnx_path


def _plot_curve(result: TrainResult, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 3.5))
    episodes = [row["episode"] for row in result.curve]
    ax.plot(
        episodes,
        [100 * row["recirculation_rate"] for row in result.curve],
        alpha=0.5,
        label="training day",
    )
    if result.validation:
        ax.plot(
            [v["episode"] for v in result.validation],
            [100 * v["worst"] for v in result.validation],
            "o-",
            label="validation worst group",
        )
        ax.plot(
            [v["episode"] for v in result.validation],
            [100 * v["mean"] for v in result.validation],
            "s-",
            label="validation mean",
        )
    ax.set_xlabel("episode")
    ax.set_ylabel("recirculation rate (%)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["ALGOS", "Settings", "TrainResult", "Trainer", "write_run"]
