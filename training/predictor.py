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

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from decision.features import N_FEATURES, observe
from decision.policies import ProportionalPolicy
from training.mlp import MLP, Adam, huber_grad
from twin.closed_loop import physics_of
from twin.groups import sample_day
from twin.sim import SortationTwin

if TYPE_CHECKING:
    from training.dqn import Trainer

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
    trainer: Trainer, episodes: int, seed_base: int
) -> tuple[FloatArray, IntArray, FloatArray, FloatArray]:
    """Rollouts with exhaustive group labels: obs [N, D, F], counts [N, D], rewards [N, G, D],
    and first inductions per interval [N] (to express errors as recirculation rates)."""
    from training.dqn import agent_rewards

    scenario, groups = trainer.scenario, trainer.groups
    behaviour = ProportionalPolicy(physics_of(scenario))
    rng = np.random.default_rng(seed_base)
    obs_rows, count_rows, reward_rows, volume_rows = [], [], [], []
    scale = trainer.scale.packages_per_destination_interval
    for episode in range(episodes):
        group = int(rng.integers(groups.n_groups))
        day = sample_day(groups, group, scenario, seed=seed_base + episode)
        branch_days = [
            sample_day(groups, g, scenario, seed=seed_base + 7919 * (episode + 1) + g)
            for g in range(groups.n_groups)
        ]
        twin = SortationTwin(scenario, day, seed=seed_base + episode)
        from twin.closed_loop import day_plan

        behaviour.start_day(day_plan(day))
        while not twin.done:
            state = twin.site_state()
            obs = observe(state, trainer.scale)
            values = behaviour.values(state, obs)
            values = values + rng.normal(0.0, 0.5, size=values.shape)
            counts = trainer.projector.counts(values, state)
            owner = trainer.projector.owner(counts, state)
            labels = []
            volumes = []
            for branch_day in branch_days:
                result = twin.branch(demand=branch_day).run_interval(owner)
                trainer.branch_steps += 1
                labels.append(agent_rewards(result, scale))
                volumes.append(float(result.first_inductions.sum()))
            obs_rows.append(obs)
            count_rows.append(counts)
            reward_rows.append(np.stack(labels))
            volume_rows.append(np.asarray(volumes, dtype=np.float32))
            twin.run_interval(owner)
    return (
        np.stack(obs_rows).astype(np.float32),
        np.stack(count_rows),
        np.stack(reward_rows).astype(np.float32),
        np.stack(volume_rows),
    )


def fit_predictor(trainer: Trainer) -> tuple[WorstGroupPredictor, dict[str, float]]:
    """Fit on 80% of the rollout intervals; report accuracy on the other 20%."""
    s = trainer.s
    n_groups = trainer.groups.n_groups
    levels = trainer.levels
    obs, counts, rewards, volumes = collect(trainer, s.predictor_episodes, 700_000 + s.seed)
    n = obs.shape[0]
    order = np.random.default_rng(s.seed).permutation(n)
    split = max(1, int(0.8 * n))
    train_idx, test_idx = order[:split], order[split:] if n - split > 0 else order[:1]

    net = MLP.create((N_FEATURES, s.hidden, s.hidden, levels * n_groups), seed=s.seed + 17)
    optimizer = Adam(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(s.seed + 1)
    d = obs.shape[1]
    for _ in range(s.predictor_epochs):
        for start in range(0, split, 8):
            batch = train_idx[rng.permutation(split)[start : start + 8] % split]
            x = obs[batch].reshape(-1, N_FEATURES)
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
    scale = trainer.scale.packages_per_destination_interval
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
    return predictor, report
