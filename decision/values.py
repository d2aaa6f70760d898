"""The one check of a policy's output: the engine, the ONNX policy and the projection all call
:func:`check_values`, so "usable values" means the same thing on every path."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def check_values(values: npt.NDArray[np.float64], shape: tuple[int, int]) -> None:
    """Raise ``ValueError`` unless ``values`` has ``shape`` and holds no NaN and no +inf.

    -inf is allowed: it is how a policy says "never this count" (the projection drops it).
    """
    if values.shape != shape:
        raise ValueError(f"values shape {values.shape} != {shape}")
    if np.isnan(values).any() or np.isposinf(values).any():
        raise ValueError("values contain NaN or +inf")


__all__ = ["check_values"]
