"""Training: it improves the policy, the robust variants run, and the artifact is what serves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chuteflow.cli import main
from decision.features import observe
from decision.policies import OnnxPolicy
from training.dqn import Settings, Trainer, write_run


def test_training_improves_the_policy_on_held_out_days() -> None:
    trainer = Trainer(Settings(scenario="small", algo="marl", episodes=10, validate_every=10))
    untrained = trainer.validate()["mean"]
    result = trainer.train()
    trained = min(v["mean"] for v in result.validation)
    # seeded and deterministic: an untrained net leaves most destinations without chutes
    assert trained < 0.5 * untrained
    assert result.env_steps == 10 * trainer.scenario.n_intervals


@pytest.mark.parametrize("algo", ["drmarl", "drmarl-exhaustive"])
def test_robust_variants_simulate_group_branches(algo: str) -> None:
    trainer = Trainer(Settings.quick(scenario="small", algo=algo, episodes=2))  # type: ignore[arg-type]
    result = trainer.train()
    groups = trainer.groups.n_groups
    steps = 2 * trainer.scenario.n_intervals
    if algo == "drmarl-exhaustive":
        assert result.branch_steps == steps * groups
    else:
        # exhaustive labels for the predictor's rollouts, then one branch per training step
        assert result.predictor_report is not None
        labels = int(result.predictor_report["intervals"]) * groups
        assert result.branch_steps == labels + steps
        assert 0.0 <= result.predictor_report["worst_group_accuracy"] <= 1.0


def test_written_onnx_policy_matches_the_trained_network(tmp_path: Path) -> None:
    settings = Settings.quick(scenario="small", algo="marl", episodes=2)
    trainer = Trainer(settings)
    result = trainer.train()
    path = write_run(result, settings, tmp_path, trainer.scenario)
    assert json.loads((tmp_path / "settings.json").read_text())["algo"] == "marl"
    assert (tmp_path / "training_curve.png").stat().st_size > 0
    policy = OnnxPolicy(path, trainer.levels)
    from twin.groups import sample_day
    from twin.sim import SortationTwin

    day = sample_day(trainer.groups, 0, trainer.scenario, seed=3)
    twin = SortationTwin(trainer.scenario, day, seed=3)
    obs = observe(twin.site_state(), trainer.scale)
    np.testing.assert_allclose(
        policy.values(twin.site_state(), obs), result.net(obs), rtol=1e-5, atol=1e-5
    )


def test_train_cli_quick_writes_a_policy_simulate_can_serve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["train", "--scenario", "small", "--algo", "marl", "--quick", "--out", str(tmp_path)])
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    onnx = summary["onnx"]
    assert Path(onnx).is_file()
    code = main(
        [
            "simulate",
            "--scenario",
            "small",
            "--group",
            "1",
            "--seed",
            "2",
            "--policy",
            onnx,
            "--json",
        ]
    )
    assert code == 0
    kpis = json.loads(capsys.readouterr().out)
    assert kpis["inducted"] == kpis["sorted"] + kpis["unsorted"]
