"""The in-training network as a decision-engine policy (validation runs the serving path)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from decision.features import ObservationBatch
from decision.state import SiteState
from floor.plan import DayPlan
from training.mlp import MLP


class MLPPolicy:
    """Values from a numpy :class:`MLP`; the exported ONNX file computes the same numbers."""

    def __init__(self, net: MLP, name: str, version: str) -> None:
        self.net = net
        self.name = name
        self.version = version

    def start_day(self, plan: DayPlan) -> None:
        return None

    def values(self, state: SiteState, observations: ObservationBatch) -> npt.NDArray[np.float64]:
        return self.net(observations).astype(np.float64)
