"""A small multilayer perceptron in numpy: forward, backward and Adam.

The shared agent network is tiny (observation -> 64 -> 64 -> chute levels) and is evaluated
on batches of a few thousand rows. At that size numpy is faster on a CPU than a deep-learning
framework's per-op overhead, and it keeps a 2 GB CUDA wheel out of every install. The
weights are exported to ONNX (``training/export.py``) and served by onnxruntime; a parity
test holds the two to the same numbers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]


@dataclass
class MLP:
    """ReLU layers ``sizes[0] -> ... -> sizes[-1]``, linear output."""

    sizes: tuple[int, ...]
    weights: list[Array] = field(default_factory=list)
    biases: list[Array] = field(default_factory=list)

    @classmethod
    def create(cls, sizes: tuple[int, ...], seed: int) -> MLP:
        """He-initialised weights from an explicit seed; zero biases."""
        rng = np.random.default_rng(seed)
        net = cls(sizes)
        for fan_in, fan_out in itertools.pairwise(sizes):
            scale = np.sqrt(2.0 / fan_in)
            net.weights.append((rng.standard_normal((fan_in, fan_out)) * scale).astype(np.float32))
            net.biases.append(np.zeros(fan_out, dtype=np.float32))
        # A small last layer keeps early values near zero, so the first projections are not
        # driven by initialisation noise.
        net.weights[-1] *= np.float32(0.1)
        return net

    def copy(self) -> MLP:
        return MLP(self.sizes, [w.copy() for w in self.weights], [b.copy() for b in self.biases])

    def load_from(self, other: MLP) -> None:
        for mine, theirs in zip(
            self.weights + self.biases, other.weights + other.biases, strict=True
        ):
            mine[...] = theirs

    def forward(self, x: Array) -> tuple[Array, list[Array]]:
        """Output and the layer inputs ``backward`` needs."""
        activations = [x]
        h = x
        last = len(self.weights) - 1
        for index, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if index < last:
                h = np.maximum(h, 0.0)
            activations.append(h)
        return h, activations

    def __call__(self, x: Array) -> Array:
        return self.forward(x)[0]

    def backward(self, activations: list[Array], grad_out: Array) -> list[Array]:
        """Gradients ``[dW0, db0, dW1, db1, ...]`` of a loss whose output gradient is given."""
        grads: list[Array] = []
        g = grad_out
        for index in range(len(self.weights) - 1, -1, -1):
            inputs = activations[index]
            grads.append(g.sum(axis=0))
            grads.append(inputs.T @ g)
            if index > 0:
                g = (g @ self.weights[index].T) * (activations[index] > 0)
        grads.reverse()
        return grads  # [dW0, db0, ...] after the reverse

    def parameters(self) -> list[Array]:
        params: list[Array] = []
        for w, b in zip(self.weights, self.biases, strict=True):
            params += [w, b]
        return params


@dataclass
class Adam:
    """Adam with gradient-norm clipping, updating parameters in place."""

    params: list[Array]
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    clip_norm: float = 10.0
    step_count: int = 0
    m: list[Array] = field(default_factory=list)
    v: list[Array] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]

    def step(self, grads: list[Array]) -> None:
        norm = float(np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads)))
        factor = min(1.0, self.clip_norm / (norm + 1e-12))
        self.step_count += 1
        t = self.step_count
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            g = g * np.float32(factor)
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            m_hat = m / (1 - self.beta1**t)
            v_hat = v / (1 - self.beta2**t)
            p -= (self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(np.float32)


def huber_grad(error: Array, delta: float = 1.0) -> tuple[float, Array]:
    """Mean Huber loss of ``error`` and its gradient with respect to ``error``."""
    abs_error = np.abs(error)
    quadratic = np.minimum(abs_error, delta)
    loss = float(np.mean(0.5 * quadratic**2 + delta * (abs_error - quadratic)))
    grad = np.clip(error, -delta, delta) / error.size
    return loss, grad.astype(np.float32)
