"""A value ensemble serves the mean of its members' values, and refuses members that disagree."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from decision.artifacts import inspect_artifact
from decision.features import FEATURE_SETS
from decision.policies import OnnxPolicy
from training.ensemble import ensemble, main
from training.export import to_onnx
from training.mlp import MLP

BASE = FEATURE_SETS["base"]


def _member(seed: int, features: tuple[str, ...] = BASE, levels: int = 13) -> bytes:
    net = MLP.create((len(features), 16, levels), seed=seed)
    meta = {
        "policy_name": "drmarl",
        "policy_version": f"s{seed}",
        "scenario": "large",
        "features": ",".join(features),
    }
    data: bytes = to_onnx(net, meta).SerializeToString()
    return data


def _nets(*seeds: int) -> list[MLP]:
    return [MLP.create((len(BASE), 16, 13), seed=s) for s in seeds]


def test_values_are_the_members_mean(tmp_path: Path) -> None:
    members = [(f"m{s}", _member(s)) for s in (1, 2, 3)]
    path = tmp_path / "ens.onnx"
    path.write_bytes(ensemble(members, "large-ens3").SerializeToString())
    policy = OnnxPolicy(path, levels=13)
    obs = np.random.default_rng(0).standard_normal((50, len(BASE))).astype(np.float32)
    expected = np.mean([net(obs) for net in _nets(1, 2, 3)], axis=0)
    np.testing.assert_allclose(policy.values(None, obs), expected, rtol=1e-5, atol=1e-5)  # type: ignore[arg-type]
    assert (policy.name, policy.version) == ("drmarl", "large-ens3")
    check = inspect_artifact(path.read_bytes())
    assert check.features == BASE and check.scenarios == ("large",)
    assert len(check.onnx_metadata["members"].split(",")) == 3


def test_members_reading_other_features_get_their_own_columns(tmp_path: Path) -> None:
    trust = FEATURE_SETS["trust"]
    reordered = tuple(reversed(BASE))
    members = [("base", _member(1)), ("trust", _member(2, trust)), ("rev", _member(3, reordered))]
    path = tmp_path / "ens.onnx"
    path.write_bytes(ensemble(members, "mixed").SerializeToString())
    check = inspect_artifact(path.read_bytes())
    assert check.features == trust  # the union, in the engine's order
    obs = np.random.default_rng(1).standard_normal((30, len(trust))).astype(np.float32)
    base_net = MLP.create((len(BASE), 16, 13), seed=1)
    trust_net = MLP.create((len(trust), 16, 13), seed=2)
    rev_net = MLP.create((len(BASE), 16, 13), seed=3)
    expected = np.mean(
        [base_net(obs[:, : len(BASE)]), trust_net(obs), rev_net(obs[:, len(BASE) - 1 :: -1])],
        axis=0,
    )
    served = OnnxPolicy(path, levels=13).values(None, obs)  # type: ignore[arg-type]
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-5)


def test_members_must_agree() -> None:
    with pytest.raises(ValueError, match="at least two"):
        ensemble([("a", _member(1))], "v")
    with pytest.raises(ValueError, match="scenario"):
        other = _member(2).replace(b"large", b"small")
        ensemble([("a", _member(1)), ("b", other)], "v")
    with pytest.raises(ValueError, match="output width"):
        ensemble([("a", _member(1)), ("b", _member(2, levels=9))], "v")
    with pytest.raises(ValueError, match="not an ONNX model"):
        ensemble([("a", _member(1)), ("b", b"not onnx")], "v")


def test_cli_reports_a_bad_member(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "a.onnx"
    good.write_bytes(_member(1))
    with pytest.raises(SystemExit) as exited:
        main(["--out", str(tmp_path / "e.onnx"), str(good), str(tmp_path / "missing.onnx")])
    assert exited.value.code == 2
    assert "missing.onnx" in capsys.readouterr().err
    assert not (tmp_path / "e.onnx").exists()


def test_cli_records_members_and_their_settings(tmp_path: Path) -> None:
    paths = []
    for seed in (1, 2):
        run = tmp_path / f"run{seed}"
        run.mkdir()
        (run / "drmarl-large.onnx").write_bytes(_member(seed))
        (run / "settings.json").write_text(json.dumps({"seed": seed, "algo": "drmarl"}))
        paths.append(str(run / "drmarl-large.onnx"))
    out = tmp_path / "ens" / "drmarl-large.onnx"
    assert main(["--out", str(out), *paths]) == 0
    recorded = json.loads(out.with_suffix(".members.json").read_text())
    assert [m["settings"]["seed"] for m in recorded] == [1, 2]
    assert recorded[0]["sha256"] == hashlib.sha256(_member(1)).hexdigest()
    assert OnnxPolicy(out, levels=13).version.startswith("ensemble2-")
