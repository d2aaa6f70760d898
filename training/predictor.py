"""The worst-group predictor: a contextual bandit ``Q_CB(s, a, g)`` (DRMARL's speed-up).

For a state and a joint action it predicts every destination's reward under every group's
demand; the predicted team reward per group is the sum over destinations, and the worst
group is its argmin. It is fitted once on rollouts of a behaviour policy in which each
interval is also simulated under every group (the expensive, exhaustive labels), then frozen,
so robust training simulates one branch per step instead of one per group.

The behaviour policy is the proportional heuristic with exploration noise: any reasonable
policy visits the states the robust learner will see early on; the paper uses its MARL policy.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from decision.build import build_engine
from decision.features import FEATURE_SETS, FeatureScale, feature_columns
from decision.policies import ProportionalPolicy
from floor.daytypes import DayTypeGroups
from floor.seeds import Stream, derive
from floor.site import Site
from training.explore import GaussianNoise
from training.mlp import MLP, Adam, huber_grad
from training.settings import Settings
from twin.closed_loop import day_plan
from twin.groups import sample_day
from twin.reward import destination_rewards
from twin.sim import SortationTwin

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


class WorstGroupPredictor:
    """``predict(obs, counts) -> [G]`` team rewards; ``worst_group`` is their argmin."""

    def __init__(self, net: MLP, levels: int, n_groups: int) -> None:
        self.net = net
        self.levels = levels
        self.n_groups = n_groups

    def per_agent(self, obs: FloatArray, counts: IntArray) -> FloatArray:
        out = self.net(obs).reshape(obs.shape[0], self.levels, self.n_groups)
        return out[np.arange(obs.shape[0]), counts]  # [D, G]

    def predict(self, obs: FloatArray, counts: IntArray) -> FloatArray:
        team: FloatArray = self.per_agent(obs, counts).sum(axis=0)
        return team

    def worst_group(self, obs: FloatArray, counts: IntArray) -> int:
        return int(np.argmin(self.predict(obs, counts)))


def collect(
    site: Site, groups: DayTypeGroups, settings: Settings
) -> tuple[FloatArray, IntArray, FloatArray, FloatArray, int]:
    """Rollouts with exhaustive group labels: obs [N, D, F], counts [N, D], rewards [N, G, D],
    first inductions per interval [N] (to express errors as recirculation rates), and the
    number of twin branches simulated. The behaviour acts through the serving engine."""
    scenario, run_seed = site.scenario, settings.seed
    scale = FeatureScale.of(scenario)
    rng = np.random.default_rng(derive(Stream.PREDICTOR_ROLLOUT, run_seed))
    columns = feature_columns(FEATURE_SETS[settings.feature_set])
    behaviour = GaussianNoise(ProportionalPolicy(site.physics), rng, sd=0.5)
    engine = build_engine(site, behaviour, settings.solver_time_limit_s)
    obs_rows, count_rows, reward_rows, volume_rows = [], [], [], []
    branches = 0
    for episode in range(settings.predictor_episodes):
        group = int(rng.integers(groups.n_groups))
        day_seed = derive(Stream.PREDICTOR_ROLLOUT, run_seed, episode)
        day = sample_day(groups, group, scenario, seed=day_seed)
        branch_days = [
            sample_day(
                groups, g, scenario, seed=derive(Stream.PREDICTOR_ROLLOUT, run_seed, episode, g)
            )
            for g in range(groups.n_groups)
        ]
        twin = SortationTwin(scenario, day, seed=day_seed)
        engine.start_day(day_plan(day))
        while not twin.done:
            state = twin.site_state()
            start = scenario.interval_start(state.interval_index, day.day_start)
            decision = engine.decide(state, interval_start=start, now=start)
            assert decision.observations is not None
            labels = []
            volumes = []
            for branch_day in branch_days:
                result = twin.branch(demand=branch_day).run_interval(decision.owner)
                branches += 1
                labels.append(destination_rewards(result, scale))
                volumes.append(float(result.first_inductions.sum()))
            obs_rows.append(decision.observations[:, columns])
            count_rows.append(decision.counts)
            reward_rows.append(np.stack(labels))
            volume_rows.append(np.asarray(volumes, dtype=np.float32))
            twin.run_interval(decision.owner)
    return (
        np.stack(obs_rows).astype(np.float32),
        np.stack(count_rows),
        np.stack(reward_rows).astype(np.float32),
        np.stack(volume_rows),
        branches,
    )


def fit_predictor(
    site: Site, groups: DayTypeGroups, s: Settings
) -> tuple[WorstGroupPredictor, dict[str, float], int]:
    """Fit on 80% of the rollout intervals; report accuracy on the other 20%. Returns the
    frozen predictor, its report and the twin branches its rollouts simulated."""
    n_groups = groups.n_groups
    levels = site.scenario.max_chutes_per_destination + 1
    obs, counts, rewards, volumes, branches = collect(site, groups, s)
    n = obs.shape[0]
    fit_rng = np.random.default_rng(derive(Stream.PREDICTOR_FIT, s.seed))
    order = fit_rng.permutation(n)
    split = max(1, int(0.8 * n))
    train_idx, test_idx = order[:split], order[split:] if n - split > 0 else order[:1]

    net = MLP.create(
        (obs.shape[-1], s.hidden, s.hidden, levels * n_groups),
        seed=derive(Stream.NETWORK_INIT, s.seed, 1),
    )
    optimizer = Adam(net.parameters(), lr=1e-3)
    rng = fit_rng
    d = obs.shape[1]
    for _ in range(s.predictor_epochs):
        for start in range(0, split, 8):
            batch = train_idx[rng.permutation(split)[start : start + 8] % split]
            x = obs[batch].reshape(-1, obs.shape[-1])
            a = counts[batch].reshape(-1)
            y = rewards[batch].transpose(0, 2, 1).reshape(-1, n_groups)  # [B*D, G]
            out, acts = net.forward(x)
            out3 = out.reshape(-1, levels, n_groups)
            rows = np.arange(x.shape[0])
            error = out3[rows, a] - y
            _, grad_error = huber_grad(error)
            grad = np.zeros_like(out3)
            grad[rows, a] = grad_error
            optimizer.step(net.backward(acts, grad.reshape(out.shape)))

    predictor = WorstGroupPredictor(net, levels, n_groups)
    hits, regret_rate = 0, []
    scale = FeatureScale.of(site.scenario).packages_per_destination_interval
    for i in test_idx:
        true_team = rewards[i].sum(axis=1)  # [G]
        predicted = predictor.worst_group(obs[i], counts[i])
        true_worst = int(np.argmin(true_team))
        hits += int(predicted == true_worst)
        # Reward units are recirculations / scale: convert the miss back to a rate.
        missed = (true_team[predicted] - true_team[true_worst]) * scale
        regret_rate.append(missed / max(float(volumes[i][true_worst]), 1.0))
    report = {
        "intervals": float(n),
        "test_intervals": float(len(test_idx)),
        "worst_group_accuracy": hits / len(test_idx),
        "mean_error_recirculation_rate": float(np.mean(regret_rate)),
        "max_error_recirculation_rate": float(np.max(regret_rate)),
        "destinations": float(d),
    }
    return predictor, report, branches
