"""MARL and distributionally robust MARL (DRMARL) for chute allocation, in one file.

One shared Q-network values every chute count for every destination from that destination's
observation (``decision.features``). The joint action is the projection of the summed values
onto the guardrails (value decomposition: joint value = sum of agent values). Training acts
through the serving path itself: the network is a policy (``training/policy.py``) wrapped for
epsilon-greedy exploration (``training/explore.py``) inside an engine from
``decision.build.build_engine``, so every action went through the projection, validator and
fallback the worker uses. Exploring agents get random values; the projection keeps the joint
action budget-feasible. Seeds come from named streams (``floor/seeds.py``).

Algorithms (``Settings.algo``):

- ``marl``: DQN on days of one typical group (the paper's baseline).
- ``drmarl-exhaustive``: the robust target. From the same floor state, the interval is also
  simulated under every group's demand; the target uses the reward of the worst group
  (``min_g r_g + gamma * max Q(s')``), so the policy learns the worst day type's consequences.
  With ``Settings.contamination`` rho < 1 the ambiguity set is the rho-contamination of the day
  actually simulated, and the reward is ``(1 - rho) r_realized + rho min_g r_g``.
- ``drmarl``: the same target with the worst group predicted by a contextual bandit
  ``Q_CB(s, a, g)`` (``training/predictor.py``) trained once on rollouts under each group,
  then frozen: one simulated branch per step instead of one per group.

With ``Settings.group_dro`` eta > 0 the robust algorithms also draw each training day's group
from an adversary (:class:`GroupAdversary`): the KL-regularized worst mixture of groups, by
each group's recent recirculation over the proportional heuristic's. The contamination reward
hedges within a day against every group; the adversary instead puts the hard day types into
the training days, where the policy learns them from the day itself.

Targets use the next state's greedy projected joint action recorded when that state was acted
in (not re-projected at update time): projecting every sampled transition would cost one
CP-SAT solve per row of every batch. Each agent learns its own reward (``twin/reward.py``: its
recirculations); the team reward is their sum, so the decomposition is exact in the reward.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path

import numpy as np
import numpy.typing as npt

from decision.build import build_engine
from decision.engine import Decision, DecisionEngine
from decision.features import FEATURE_SETS, FeatureScale, feature_columns, observe
from decision.state import SiteState
from evaluation.suites import with_drift
from floor.daytypes import DayTypeGroups, default_groups
from floor.files import write_atomic
from floor.scenario import Scenario
from floor.seeds import Stream, derive
from floor.site import load_site
from training.explore import EpsilonGreedy
from training.mlp import MLP, Adam, huber_grad
from training.policy import MLPPolicy
from training.predictor import WorstGroupPredictor, fit_predictor
from training.pregate import Score, excess, score
from training.selection import RULE_KINDS, rule_rows, score_days
from training.settings import ALGOS, Settings
from twin.closed_loop import day_plan, run_day
from twin.day import DayDemand
from twin.groups import sample_day
from twin.reward import destination_rewards
from twin.sim import SortationTwin
from twin.spike import big_destination, with_concentration

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


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
    n_features: int
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
        self.obs = np.zeros((c, d, self.n_features), dtype=np.float32)
        self.next_obs = np.zeros((c, d, self.n_features), dtype=np.float32)
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


@dataclass
class GroupAdversary:
    """The adversary that picks training days' groups (``Settings.group_dro``).

    The worst case over mixtures ``q`` of the groups, regularized by ``KL(q || uniform) / eta``,
    has the closed form ``q_g ~ exp(eta * L_g)`` (the Gibbs / group-DRO solution). ``L_g`` is the
    policy's recirculation rate on group ``g`` (its training days, or with
    ``Settings.group_dro_probe_every`` the greedy policy on the probe day) over a reference
    policy's rate on the probe day of ``g`` (``Settings.group_dro_reference``; by default the
    proportional heuristic), an exponential average
    (:data:`LOSS_AVERAGING`): a loss relative to what the reference gets, so a day type that is
    hard for every policy (the lookahead's too) does not take all the weight, only one where
    the policy is worse than it should be.

    Losses are estimates, so: every group is played once before the adversary chooses (an
    unseen group has no loss yet), and :data:`UNIFORM_SHARE` of the draws stay uniform, so a
    group whose estimate went stale (low early, never redrawn) is seen again.
    """

    baseline: FloatArray
    eta: float
    loss: FloatArray = field(init=False)
    """[G] each group's loss estimate; NaN until the group is first seen."""

    LOSS_AVERAGING = 0.5
    UNIFORM_SHARE = 0.25

    def __post_init__(self) -> None:
        self.loss = np.full_like(self.baseline, np.nan)

    @property
    def seen(self) -> npt.NDArray[np.bool_]:
        """[G] whether each group has a loss estimate yet."""
        return ~np.isnan(self.loss)

    def weights(self) -> FloatArray:
        """The probability of each group for the next training day."""
        n = self.baseline.size
        if not self.seen.all():
            unseen = (~self.seen).astype(np.float32)
            out: FloatArray = unseen / unseen.sum()
            return out
        q = np.exp(self.eta * (self.loss - self.loss.max()))
        out = ((1 - self.UNIFORM_SHARE) * q / q.sum() + self.UNIFORM_SHARE / n).astype(np.float32)
        return out

    def draw(self, rng: np.random.Generator) -> int:
        q = self.weights().astype(np.float64)
        return int(rng.choice(q.size, p=q / q.sum()))

    def update(self, group: int, rate: float) -> None:
        ratio = rate / max(float(self.baseline[group]), 1e-4)
        if np.isnan(self.loss[group]):
            self.loss[group] = ratio
            return
        a = self.LOSS_AVERAGING
        self.loss[group] = (1 - a) * self.loss[group] + a * ratio


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
    exported_validation: dict[str, float] | None = None
    """The validation row of the exported network (``Settings.checkpoint`` chose it)."""
    snapshots: list[tuple[dict[str, float], MLP]] = field(default_factory=list)
    """``Settings.snapshots`` > 1: the best validated networks with their rows, ``net`` first;
    the run exports their value ensemble."""


class Trainer:
    """Runs one training configuration; see the module docstring for the algorithms."""

    def __init__(
        self, settings: Settings, on_episode: Callable[[int, dict[str, float]], None] | None = None
    ) -> None:
        self.s = settings
        self.site = load_site(settings.scenario)
        self.scenario: Scenario = self.site.scenario
        self.groups = default_groups(self.scenario)
        self.scale = FeatureScale.of(self.scenario)
        self.levels = self.scenario.max_chutes_per_destination + 1
        self.rng = np.random.default_rng(derive(Stream.TRAIN_EXPLORATION, settings.seed))
        self.features = FEATURE_SETS[settings.feature_set]
        self.columns = feature_columns(self.features)
        sizes = (len(self.features), settings.hidden, settings.hidden, self.levels)
        self.net = MLP.create(sizes, seed=derive(Stream.NETWORK_INIT, settings.seed, 0))
        self.target = self.net.copy()
        self.optimizer = Adam(self.net.parameters(), lr=settings.lr)
        self.buffer = ReplayBuffer(
            settings.buffer_transitions, self.scenario.n_destinations, len(self.features)
        )
        self.explorer = EpsilonGreedy(
            MLPPolicy(self.net, name=settings.algo, version="training", columns=self.columns),
            self.rng,
        )
        self.engine = build_engine(self.site, self.explorer, settings.solver_time_limit_s)
        self.on_episode = on_episode
        self.env_steps = 0
        self.branch_steps = 0
        self.predictor: WorstGroupPredictor | None = None
        self.adversary = (
            GroupAdversary(self._baseline_rates(), settings.group_dro)
            if settings.group_dro > 0 and settings.algo != "marl"
            else None
        )

    # ----------------------------------------------------------------- acting

    def _decide(self, state: SiteState, demand: DayDemand, explore: bool = False) -> Decision:
        """The engine's decision for ``state`` through the serving path (projection, validator,
        fallback); ``explore`` uses the agents :meth:`EpsilonGreedy.draw` picked."""
        if not explore:
            self.explorer.greedy()
        start = self.scenario.interval_start(state.interval_index, demand.day_start)
        return self.engine.decide(state, interval_start=start, now=start)

    def _epsilon(self, episode: int) -> float:
        s = self.s
        horizon = max(1.0, s.epsilon_fraction * s.episodes)
        frac = min(1.0, episode / horizon)
        return s.epsilon_start + frac * (s.epsilon_end - s.epsilon_start)

    @cached_property
    def greedy_engine(self) -> DecisionEngine:
        """The network's greedy decisions through the serving path, for validation and the
        adversary's probes; the network is updated in place, so one engine serves the run."""
        policy = MLPPolicy(self.net, name=self.s.algo, version="greedy", columns=self.columns)
        return build_engine(self.site, policy, self.s.solver_time_limit_s)

    def _day_rate(self, engine: DecisionEngine, group: int, seed: int) -> float:
        """``engine``'s recirculation rate on the day of ``group`` drawn with ``seed``."""
        day = sample_day(self.groups, group, self.scenario, seed=seed)
        return run_day(engine, day, seed=seed).kpis.recirculation_rate

    def _baseline_rates(self) -> FloatArray:
        """The reference policy's recirculation rate on one day of every group
        (``Settings.group_dro_reference``): what the adversary measures the losses against."""
        reference = self.s.group_dro_reference
        return self._probe_rates(build_engine(self.site, reference, self.s.solver_time_limit_s))

    def _probe_rates(self, engine: DecisionEngine) -> FloatArray:
        """``engine``'s recirculation rate on the adversary's probe day of every group."""
        return np.asarray(
            [
                self._day_rate(engine, g, derive(Stream.TRAIN_BASELINE_DAY, self.s.seed, g))
                for g in range(self.groups.n_groups)
            ],
            dtype=np.float32,
        )

    # ----------------------------------------------------------------- robust reward

    def _group_days(self, episode: int) -> list[DayDemand]:
        seed = self.s.seed
        return [
            sample_day(
                self.groups,
                g,
                self.scenario,
                seed=derive(Stream.TRAIN_BRANCH_DAY, seed, episode, g),
            )
            for g in range(self.groups.n_groups)
        ]

    def _branch_rewards(self, twin: SortationTwin, owner: IntArray, day: DayDemand) -> FloatArray:
        branch = twin.branch(demand=day)
        self.branch_steps += 1
        return destination_rewards(branch.run_interval(owner), self.scale)

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
        obs = b.obs[idx].reshape(-1, b.n_features)
        next_obs = b.next_obs[idx].reshape(-1, b.n_features)
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
        elif self.adversary is not None:
            group = self.adversary.draw(self.rng)
        else:
            group = int(self.rng.integers(self.groups.n_groups))
        seed = derive(Stream.TRAIN_DAY, s.seed, episode)
        day = sample_day(self.groups, group, self.scenario, seed=seed)
        if s.drift_probability > 0:
            draw = np.random.default_rng(derive(Stream.TRAIN_DAY, s.seed, episode, 1))
            if draw.random() < s.drift_probability:
                day = with_drift(day, float(draw.uniform(0.25, 1.0)), seed)
        if s.concentration_probability > 0:
            # its own stream: runs without concentrated days keep exactly their days
            draw = np.random.default_rng(derive(Stream.TRAIN_DAY, s.seed, episode, 2))
            if draw.random() < s.concentration_probability:
                low, high = s.concentration_share
                pick_seed = int(draw.integers(2**31))
                share = float(draw.uniform(low, high))
                pick = big_destination(day, pick_seed, below=share)
                planned = bool(draw.random() < 0.5)
                day = with_concentration(day, pick, share, seed, planned=planned)
        return group, day

    def _lr(self, episode: int) -> float:
        """``Settings.lr`` decayed linearly to ``lr * lr_final`` at the last episode."""
        s = self.s
        frac = episode / max(1, s.episodes - 1)
        return s.lr * (1.0 - frac * (1.0 - s.lr_final))

    def run_episode(self, episode: int) -> dict[str, float]:
        s = self.s
        self.optimizer.lr = self._lr(episode)
        group, demand = self._episode_day(episode)
        twin = SortationTwin(self.scenario, demand, seed=derive(Stream.TRAIN_DAY, s.seed, episode))
        robust = s.algo != "marl"
        days = self._group_days(episode) if robust else []
        epsilon = self._epsilon(episode)
        n_agents = self.scenario.n_destinations
        self.engine.start_day(day_plan(demand))
        state = twin.site_state()
        greedy = self._decide(state, demand)
        losses = []
        while not twin.done:
            assert greedy.observations is not None  # the engine returns what the policy saw
            obs = greedy.observations[:, self.columns]
            action = greedy
            if self.explorer.draw(n_agents, epsilon):
                action = self._decide(state, demand, explore=True)
            counts = action.counts
            worst = self._robust_reward(twin, action.owner, counts, obs, days) if robust else None
            result = twin.run_interval(action.owner)
            self.env_steps += 1
            reward = destination_rewards(result, self.scale)
            if worst is not None:
                rho = np.float32(s.contamination)
                reward = (1 - rho) * reward + rho * worst
            next_state = twin.site_state()
            if twin.done:
                next_obs = observe(next_state, self.scale)[:, self.columns]
                next_greedy = counts
            else:
                greedy = self._decide(next_state, demand)
                assert greedy.observations is not None
                next_obs = greedy.observations[:, self.columns]
                next_greedy = greedy.counts
            self.buffer.add(Transition(obs, counts, reward, next_obs, next_greedy, twin.done))
            if self.buffer.size >= s.learning_starts:
                losses += [self._update() for _ in range(s.updates_per_step)]
            state = next_state
        kpis = twin.kpis()
        row = {
            "episode": float(episode),
            "group": float(group),
            "epsilon": epsilon,
            "recirculation_rate": kpis.recirculation_rate,
            "loss": float(np.mean(losses)) if losses else float("nan"),
        }
        return row

    def validate(self, seeds: int = 1) -> dict[str, float]:
        """Greedy policy on held-out days of every group (or the training group for marl)."""
        groups = (
            [self.s.train_group if self.s.train_group is not None else typical_group(self.groups)]
            if self.s.algo == "marl"
            else list(range(self.groups.n_groups))
        )
        rates = [
            self._day_rate(self.greedy_engine, g, derive(Stream.VALIDATION_DAY, g, k))
            for g in groups
            for k in range(seeds)
        ]
        return {"mean": float(np.mean(rates)), "worst": float(np.max(rates))}

    def _validate_rule(self) -> dict[str, float]:
        """The greedy policy on the selection rule's first day of every group, as sampled and
        drifted: ``worst`` is the worst group's mean of the two."""
        score = score_days(self.greedy_engine, self.scenario, 1)
        return {"mean": score["mean"], "worst": score["worst_group"]}

    def _validate_gate(self, baseline: Score) -> dict[str, float]:
        """The greedy policy on the rule's first day of every group, as sampled, drifted and
        concentrated: ``excess`` is the most it is worse than ``baseline`` (proportional on the
        same days) in mean or worst group on any kind of day (``training.pregate``)."""
        s = score(rule_rows(self.greedy_engine, self.scenario, 1, RULE_KINDS))
        return {"mean": s["mean"], "worst": s["worst_group"], "excess": excess(s, baseline)}

    def _checkpoint_key(self, v: dict[str, float], guard: float | None) -> tuple[float, float]:
        """Lower is better (``Settings.checkpoint``). ``guard``: the heuristic's worst group on
        the rule's days, or None for ``worst``; a ``gate`` row carries its ``excess``."""
        if "excess" in v:
            return (0.0, v["mean"]) if v["excess"] <= 0.0 else (1.0, v["excess"])
        if guard is None:
            return (0.0, v["worst"] if self.s.algo != "marl" else v["mean"])
        if v["worst"] <= guard:
            return (0.0, v["mean"])
        return (1.0, v["worst"])

    def _feed_adversary(
        self, adversary: GroupAdversary, episode: int, row: dict[str, float]
    ) -> None:
        """Record the weight the episode's group was drawn with, then update the losses: from
        the training day itself, or every ``group_dro_probe_every`` episodes from the greedy
        policy on every group's probe day."""
        group = int(row["group"])
        row["group_weight"] = float(adversary.weights()[group])
        probe = self.s.group_dro_probe_every
        if probe <= 0:
            adversary.update(group, row["recirculation_rate"])
        elif (episode + 1) % probe == 0:
            for g, rate in enumerate(self._probe_rates(self.greedy_engine)):
                adversary.update(g, float(rate))

    def train(self) -> TrainResult:
        s = self.s
        start = time.perf_counter()
        predictor_report = None
        if s.algo == "drmarl":
            self.predictor, predictor_report, branches = fit_predictor(self.site, self.groups, s)
            self.branch_steps += branches
        guard, baseline = None, None
        if s.checkpoint in ("rule", "gate"):
            heuristic = build_engine(self.site, "proportional", s.solver_time_limit_s)
            if s.checkpoint == "rule":
                guard = score_days(heuristic, self.scenario, 1)["worst_group"]
            else:
                baseline = score(rule_rows(heuristic, self.scenario, 1, RULE_KINDS))
        curve: list[dict[str, float]] = []
        validation: list[dict[str, float]] = []
        # the ``snapshots`` best validated networks so far, by (checkpoint key, episode): the
        # first is the export, ties to the earlier episode
        kept: list[tuple[tuple[float, float, float], dict[str, float], MLP]] = []
        for episode in range(s.episodes):
            row = self.run_episode(episode)
            curve.append(row)
            if self.adversary is not None:
                self._feed_adversary(self.adversary, episode, row)
            last = episode == s.episodes - 1
            if (episode + 1) % s.validate_every == 0 or last:
                if baseline is not None:
                    v = self._validate_gate(baseline)
                else:
                    v = self.validate() if guard is None else self._validate_rule()
                v["episode"] = float(episode)
                validation.append(v)
                rank = (*self._checkpoint_key(v, guard), float(episode))
                if len(kept) < s.snapshots or rank < kept[-1][0]:
                    kept = sorted([*kept, (rank, v, self.net.copy())], key=lambda k: k[0])
                    kept = kept[: s.snapshots]
                row["validation_mean"] = v["mean"]
                row["validation_worst"] = v["worst"]
            if self.on_episode is not None:
                self.on_episode(episode, row)
        best, best_v = (kept[0][2], kept[0][1]) if kept else (self.net.copy(), None)
        return TrainResult(
            net=best,
            curve=curve,
            validation=validation,
            wall_seconds=time.perf_counter() - start,
            env_steps=self.env_steps,
            branch_steps=self.branch_steps,
            predictor_report=predictor_report,
            exported_validation=best_v,
            snapshots=[(v, net) for _, v, net in kept] if len(kept) > 1 else [],
        )


def _defaults_json() -> dict[str, object]:
    """Every ``Settings`` field with a default, as ``settings.json`` writes it."""
    defaults = {f.name: f.default for f in fields(Settings) if f.default is not MISSING}
    written: dict[str, object] = json.loads(json.dumps(defaults))
    return written


def finished_run(settings: Settings, out: Path) -> dict[str, object] | None:
    """The run :func:`write_run` left in ``out`` with exactly these settings, summarized, or
    None. Training is deterministic in its settings, so it would produce the same policy:
    ``train --table`` and onboarding reuse it instead of retraining (what lets either resume
    from its last finished run)."""
    settings_file, curve_file = out / "settings.json", out / "training_curve.json"
    onnx = sorted(out.glob("*.onnx"))
    if not (settings_file.is_file() and curve_file.is_file() and len(onnx) == 1):
        return None
    current = json.loads(json.dumps(asdict(settings)))
    try:  # a run killed mid-write by older code may have left a torn file: train it again
        written_json = json.loads(settings_file.read_text())
        curve = json.loads(curve_file.read_text())
    except json.JSONDecodeError:
        return None
    # a field added since the run was written, at its default, trains as before its time
    written = {**_defaults_json(), **written_json}
    if written != current:
        return None
    return {
        "onnx": str(onnx[0]),
        "wall_seconds": float(curve["wall_seconds"]),
        "env_steps": curve["env_steps"],
        "branch_steps": curve["branch_steps"],
        "predictor": curve["predictor"],
        "reused": True,
    }


def write_run(result: TrainResult, settings: Settings, out: Path, scenario: Scenario) -> Path:
    """Write the ONNX policy, the settings used, the curve and a plot; returns the ONNX path."""
    from training.export import save_onnx, to_onnx

    out.mkdir(parents=True, exist_ok=True)
    name = f"{settings.algo}-{scenario.name}"
    version = f"{scenario.name}-seed{settings.seed}-ep{settings.episodes}"
    metadata = {
        "policy_name": settings.algo,
        "policy_version": version,
        "scenario": scenario.name,
        "features": ",".join(FEATURE_SETS[settings.feature_set]),
    }
    if result.snapshots:  # the value ensemble of the best checkpoints, each kept beside it
        from training.ensemble import ensemble

        (out / "snapshots").mkdir(exist_ok=True)
        members = []
        for v, net in result.snapshots:
            label = f"ep{int(v['episode']) + 1}"
            data = to_onnx(net, metadata).SerializeToString()
            (out / "snapshots" / f"{label}.onnx").write_bytes(data)
            members.append((label, data))
        onnx_path = out / f"{name}.onnx"
        model = ensemble(members, f"{version}-snapshots{len(members)}")
        onnx_path.write_bytes(model.SerializeToString())
    else:
        onnx_path = save_onnx(result.net, out / f"{name}.onnx", metadata)
    write_atomic(out / "settings.json", json.dumps(asdict(settings), indent=2, sort_keys=True))
    # the curve is written last and whole: finished_run reads it as the run's completion mark
    write_atomic(
        out / "training_curve.json",
        json.dumps(
            {
                "curve": result.curve,
                "validation": result.validation,
                "wall_seconds": result.wall_seconds,
                "env_steps": result.env_steps,
                "branch_steps": result.branch_steps,
                "predictor": result.predictor_report,
                "snapshots": [v for v, _ in result.snapshots],
            },
            indent=1,
        ),
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


__all__ = [
    "ALGOS",
    "GroupAdversary",
    "Settings",
    "TrainResult",
    "Trainer",
    "finished_run",
    "write_run",
]
