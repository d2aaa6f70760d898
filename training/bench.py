"""``chuteflow bench train``: seconds per training episode and env steps per second.

Argument parsing lives in :mod:`chuteflow.cli.bench`.
"""

from __future__ import annotations

import time


def bench_train(scenario: str, episodes: int) -> dict[str, object]:
    """Seconds per training episode and env steps per second for each algorithm."""
    from training.dqn import Trainer
    from training.predictor import fit_predictor
    from training.settings import ALGOS, Settings

    out: dict[str, object] = {"scenario": scenario, "episodes": episodes}
    for algo in ALGOS:
        settings = Settings(
            scenario=scenario,
            algo=algo,
            episodes=episodes,
            learning_starts=1,
            validate_every=10**9,
            predictor_episodes=1,
            predictor_epochs=1,
        )
        trainer = Trainer(settings)
        if algo == "drmarl":
            trainer.predictor, _, _ = fit_predictor(trainer.site, trainer.groups, settings)
        start = time.perf_counter()
        steps_before = trainer.env_steps
        for episode in range(episodes):
            trainer.run_episode(episode)
        wall = time.perf_counter() - start
        steps = trainer.env_steps - steps_before
        out[algo] = {
            "seconds_per_episode": round(wall / episodes, 3),
            "env_steps_per_second": round(steps / wall, 2),
        }
    return out


__all__ = ["bench_train"]
