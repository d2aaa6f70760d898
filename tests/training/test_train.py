"""Training: it improves the policy, the robust variants run, and the artifact is what serves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chuteflow.cli import main
from decision.build import build_engine
from decision.features import FEATURE_SETS, feature_columns, observe
from decision.policies import OnnxPolicy
from training.dqn import GroupAdversary, Settings, Trainer, write_run
from training.policy import MLPPolicy


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


def test_group_adversary_plays_every_group_then_favours_the_worst_against_the_heuristic() -> None:
    adversary = GroupAdversary(np.array([0.01, 0.02, 0.10], dtype=np.float32), eta=4.0)
    rng = np.random.default_rng(0)
    first = set()
    for _ in range(3):
        g = adversary.draw(rng)
        assert g not in first  # an unseen group first: no loss estimate yet
        first.add(g)
        # group 1: twice the heuristic's rate; 0 and 2: half of it (2 is the hardest day
        # type in absolute terms, but not where the policy is behind)
        adversary.update(g, {0: 0.005, 1: 0.04, 2: 0.05}[g])
    q = adversary.weights()
    assert q.sum() == pytest.approx(1.0, abs=1e-6)
    assert int(np.argmax(q)) == 1
    # Gibbs weights exp(4 * (0.5 - 2)) of the worst's, mixed with a quarter uniform
    gibbs = 1.0 / (1.0 + 2.0 * np.exp(4.0 * (0.5 - 2.0)))
    assert q[1] == pytest.approx(0.75 * gibbs + 0.25 / 3, rel=1e-5)
    assert q[0] == pytest.approx(q[2]) and q[0] >= 0.25 / 3
    adversary.update(1, 0.0)  # the policy caught up: the estimate averages toward it
    assert adversary.loss[1] == pytest.approx(1.0)


def test_group_dro_training_draws_days_from_the_adversary() -> None:
    trainer = Trainer(Settings.quick(scenario="small", algo="drmarl", episodes=3, group_dro=4.0))
    assert trainer.adversary is not None and trainer.adversary.baseline.shape == (
        trainer.groups.n_groups,
    )
    result = trainer.train()
    assert all("group_weight" in row for row in result.curve)
    assert len({row["group"] for row in result.curve}) == 3  # the warm-up plays unseen groups
    assert Trainer(Settings.quick(scenario="small", algo="marl", group_dro=4.0)).adversary is None


def test_group_dro_probes_take_the_greedy_policys_losses() -> None:
    settings = Settings.quick(
        scenario="small", algo="drmarl", episodes=2, group_dro=4.0, group_dro_probe_every=2
    )
    trainer = Trainer(settings)
    adversary = trainer.adversary
    assert adversary is not None
    trainer.train()
    assert adversary.seen.all()  # one probe day of every group, greedily
    probe = MLPPolicy(trainer.net, name="drmarl", version="probe")
    rates = trainer._probe_rates(build_engine(trainer.site, probe, settings.solver_time_limit_s))
    # first sight sets the loss: the greedy rate over the heuristic's on the same day
    np.testing.assert_allclose(adversary.loss, rates / adversary.baseline, rtol=1e-5)


@pytest.mark.parametrize("feature_set", ["base", "trust"])
def test_written_onnx_policy_matches_the_trained_network(tmp_path: Path, feature_set: str) -> None:
    settings = Settings.quick(scenario="small", algo="marl", episodes=2, feature_set=feature_set)
    trainer = Trainer(settings)
    result = trainer.train()
    path = write_run(result, settings, tmp_path, trainer.scenario)
    assert json.loads((tmp_path / "settings.json").read_text())["algo"] == "marl"
    assert (tmp_path / "training_curve.png").stat().st_size > 0
    policy = OnnxPolicy(path, trainer.levels)
    assert policy.features == FEATURE_SETS[feature_set]  # the file lists what it reads
    from twin.groups import sample_day
    from twin.sim import SortationTwin

    day = sample_day(trainer.groups, 0, trainer.scenario, seed=3)
    twin = SortationTwin(trainer.scenario, day, seed=3)
    obs = observe(twin.site_state(), trainer.scale)
    np.testing.assert_allclose(
        policy.values(twin.site_state(), obs),
        result.net(obs[:, feature_columns(FEATURE_SETS[feature_set])]),
        rtol=1e-5,
        atol=1e-5,
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


def test_rule_checkpoint_exports_the_lowest_mean_within_the_heuristics_worst_group() -> None:
    trainer = Trainer(Settings.quick(scenario="small", algo="drmarl", checkpoint="rule"))
    key = trainer._checkpoint_key
    guard = 0.10
    ok_low, ok_high = {"mean": 0.05, "worst": 0.09}, {"mean": 0.06, "worst": 0.08}
    over_low, over_high = {"mean": 0.01, "worst": 0.11}, {"mean": 0.01, "worst": 0.12}
    assert key(ok_low, guard) < key(ok_high, guard)  # within the guard: lower mean wins
    assert key(ok_high, guard) < key(over_low, guard)  # any network within the guard first
    assert key(over_low, guard) < key(over_high, guard)  # until then, the lower worst group
    result = trainer.train()
    from training.selection import score_days

    heuristic = build_engine(trainer.site, "proportional", trainer.s.solver_time_limit_s)
    guard = score_days(heuristic, trainer.scenario, 1)["worst_group"]
    best = min(result.validation, key=lambda v: key(v, guard))
    assert result.exported_validation is best
    assert len(result.validation) == 2  # validated every 2 of 4 quick episodes


def test_gate_checkpoint_exports_the_lowest_mean_among_networks_that_pass_the_pre_gate() -> None:
    trainer = Trainer(Settings.quick(scenario="small", algo="drmarl", checkpoint="gate"))
    key = trainer._checkpoint_key
    passing_low, passing_high = (
        {"mean": 0.05, "worst": 0.2, "excess": -0.001},
        {
            "mean": 0.06,
            "worst": 0.1,
            "excess": 0.0,
        },
    )
    near, far = (
        {"mean": 0.01, "worst": 0.1, "excess": 0.002},
        {"mean": 0.0, "worst": 0, "excess": 0.01},
    )
    assert key(passing_low, None) < key(passing_high, None)  # both pass: the lower mean
    assert key(passing_high, None) < key(near, None)  # any passing network first
    assert key(near, None) < key(far, None)  # until then, the smaller excess
    result = trainer.train()
    from training.pregate import excess, score
    from training.selection import RULE_KINDS, rule_rows

    heuristic = build_engine(trainer.site, "proportional", trainer.s.solver_time_limit_s)
    baseline = score(rule_rows(heuristic, trainer.scenario, 1, RULE_KINDS))
    assert len(result.validation) == 2  # validated every 2 of 4 quick episodes
    assert result.exported_validation is min(result.validation, key=lambda v: key(v, None))
    again = score(rule_rows(trainer.greedy_engine, trainer.scenario, 1, RULE_KINDS))
    assert again["mean"] == pytest.approx(result.validation[-1]["mean"])  # the last network's
    assert excess(again, baseline) == pytest.approx(result.validation[-1]["excess"])


def test_unknown_feature_set_or_checkpoint_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="use one of base, trust"):
        Settings(feature_set="nope")
    with pytest.raises(ValueError, match="use one of worst, rule, gate"):
        Settings(checkpoint="best")


def test_group_dro_reference_sets_what_the_losses_are_measured_against() -> None:
    settings = Settings.quick(
        scenario="small", algo="drmarl", group_dro=1.0, group_dro_reference="lookahead"
    )
    trainer = Trainer(settings)
    assert trainer.adversary is not None
    lookahead = build_engine(trainer.site, "lookahead", settings.solver_time_limit_s)
    np.testing.assert_array_equal(trainer.adversary.baseline, trainer._probe_rates(lookahead))
    proportional = Trainer(Settings.quick(scenario="small", algo="drmarl", group_dro=1.0))
    assert proportional.adversary is not None
    assert (trainer.adversary.baseline < proportional.adversary.baseline).all()
    with pytest.raises(ValueError, match="use one of proportional, lookahead"):
        Settings(group_dro_reference="oracle")


def test_concentration_probability_concentrates_that_share_of_training_days() -> None:
    plain = Trainer(Settings.quick(scenario="small", algo="drmarl", drift_probability=0.3))
    always = Trainer(
        Settings.quick(
            scenario="small", algo="drmarl", drift_probability=0.3, concentration_probability=1.0
        )
    )
    planned = 0
    for episode in range(8):
        group, base = plain._episode_day(episode)
        same_group, day = always._episode_day(episode)
        assert group == same_group and "concentration" in day.label
        grown = np.flatnonzero((day.arrivals != base.arrivals).any(axis=0))
        assert len(grown) == 1  # the day the plain run trains on, one destination grown
        low, high = always.s.concentration_share
        share = day.arrivals[:, grown[0]].sum() / day.total
        assert low - 1e-3 <= share <= high + 1e-3
        planned += not np.array_equal(day.expected_share, base.expected_share)
    assert 0 < planned < 8  # some promotions announced in the plan, some not
    with pytest.raises(ValueError, match="concentration"):
        Settings(concentration_probability=1.5)
    with pytest.raises(ValueError, match="concentration"):
        Settings(concentration_share=(0.3, 0.2))


def test_snapshots_export_the_value_ensemble_of_the_runs_best_checkpoints(tmp_path: Path) -> None:
    settings = Settings.quick(
        scenario="small", algo="drmarl", checkpoint="gate", episodes=6, snapshots=2
    )
    trainer = Trainer(settings)
    result = trainer.train()
    key = trainer._checkpoint_key
    assert len(result.validation) == 3  # episodes 2, 4, 6
    ranked = sorted(result.validation, key=lambda v: (*key(v, None), v["episode"]))
    assert [v for v, _ in result.snapshots] == ranked[:2]  # the two best, the best first
    assert result.snapshots[0][0] is result.exported_validation
    path = write_run(result, settings, tmp_path, trainer.scenario)
    files = sorted(p.name for p in (tmp_path / "snapshots").glob("*.onnx"))
    assert files == sorted(f"ep{int(v['episode']) + 1}.onnx" for v in ranked[:2])
    curve = json.loads((tmp_path / "training_curve.json").read_text())
    assert curve["snapshots"] == ranked[:2]
    # the served file averages the two networks' values, each on its own columns
    policy = OnnxPolicy(path, trainer.levels)
    from twin.groups import sample_day
    from twin.sim import SortationTwin

    day = sample_day(trainer.groups, 0, trainer.scenario, seed=3)
    twin = SortationTwin(trainer.scenario, day, seed=3)
    obs = observe(twin.site_state(), trainer.scale)
    columns = obs[:, feature_columns(FEATURE_SETS[settings.feature_set])]
    expected = np.mean([net(columns) for _, net in result.snapshots], axis=0)
    np.testing.assert_allclose(
        policy.values(twin.site_state(), obs), expected, rtol=1e-5, atol=1e-5
    )


def test_one_snapshot_is_the_single_best_network_and_zero_is_refused(tmp_path: Path) -> None:
    settings = Settings.quick(scenario="small", algo="marl", episodes=2)
    result = Trainer(settings).train()
    assert result.snapshots == []
    write_run(result, settings, tmp_path, Trainer(settings).scenario)
    assert not (tmp_path / "snapshots").exists()
    with pytest.raises(ValueError, match="snapshots must be at least 1"):
        Settings(snapshots=0)


def test_lr_final_decays_the_step_linearly_to_its_share_and_one_keeps_it_constant() -> None:
    decayed = Trainer(Settings.quick(scenario="small", algo="marl", episodes=5, lr_final=0.1))
    assert [round(decayed._lr(e), 6) for e in range(5)] == [1e-3, 7.75e-4, 5.5e-4, 3.25e-4, 1e-4]
    decayed.run_episode(4)
    assert decayed.optimizer.lr == pytest.approx(1e-4)
    constant = Trainer(Settings.quick(scenario="small", algo="marl", episodes=5))
    assert {constant._lr(e) for e in range(5)} == {1e-3}
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="lr-final must be in"):
            Settings(lr_final=bad)


def test_a_finished_run_is_reused_when_its_settings_lack_a_field_added_at_its_default(
    tmp_path: Path,
) -> None:
    from training.dqn import finished_run

    settings = Settings.quick(scenario="small", algo="marl", episodes=2)
    trainer = Trainer(settings)
    write_run(trainer.train(), settings, tmp_path, trainer.scenario)
    assert finished_run(settings, tmp_path) is not None
    # a run written before ``lr_final`` existed: the same training, so the same policy
    written = json.loads((tmp_path / "settings.json").read_text())
    del written["lr_final"]
    (tmp_path / "settings.json").write_text(json.dumps(written))
    assert finished_run(settings, tmp_path) is not None
    # but not for settings that set the new field away from its default, nor other changes
    assert (
        finished_run(
            Settings.quick(scenario="small", algo="marl", episodes=2, lr_final=0.5), tmp_path
        )
        is None
    )
    assert finished_run(Settings.quick(scenario="small", algo="marl", episodes=3), tmp_path) is None
