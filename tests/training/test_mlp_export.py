"""The numpy network trains correctly and its ONNX export computes the same values."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from decision.features import N_FEATURES
from decision.policies import OnnxPolicy
from training.export import save_onnx
from training.mlp import MLP, Adam, huber_grad


def test_backward_matches_finite_differences() -> None:
    net = MLP.create((5, 8, 8, 3), seed=0)
    # Non-zero biases keep pre-activations off ReLU's kink, where finite differences and the
    # one-sided derivative disagree by construction.
    for bias in net.biases:
        bias += np.random.default_rng(9).uniform(0.05, 0.2, bias.shape).astype(np.float32)
    x = np.random.default_rng(1).standard_normal((7, 5)).astype(np.float32)
    direction = np.random.default_rng(2).standard_normal((7, 3)).astype(np.float32)
    _, activations = net.forward(x)
    grads = net.backward(activations, direction)
    eps = 1e-3
    for param, grad in zip(net.parameters(), grads, strict=True):
        index = tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(grad)), grad.shape))
        original = float(param[index])
        param[index] = original + eps
        plus = float((net(x).astype(np.float64) * direction).sum())
        param[index] = original - eps
        minus = float((net(x).astype(np.float64) * direction).sum())
        param[index] = original
        numeric = (plus - minus) / (2 * eps)
        assert abs(numeric - float(grad[index])) <= 2e-3 + 2e-2 * abs(numeric)


def test_adam_fits_a_small_regression() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 4)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5], [0.0]], dtype=np.float32)).astype(np.float32)
    net = MLP.create((4, 16, 1), seed=3)
    optimizer = Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(300):
        out, activations = net.forward(x)
        loss, grad = huber_grad(out - y)
        first = loss if first is None else first
        optimizer.step(net.backward(activations, grad))
    assert loss < 0.05 * first


def test_onnx_export_matches_numpy(tmp_path: Path) -> None:
    net = MLP.create((N_FEATURES, 64, 64, 13), seed=4)
    path = save_onnx(net, tmp_path / "p.onnx", {"policy_name": "drmarl", "policy_version": "x"})
    policy = OnnxPolicy(path, levels=13)
    obs = np.random.default_rng(5).standard_normal((120, N_FEATURES)).astype(np.float32)
    np.testing.assert_allclose(policy.values(None, obs), net(obs), rtol=1e-5, atol=1e-5)  # type: ignore[arg-type]
    assert (policy.name, policy.version) == ("drmarl", "x")
