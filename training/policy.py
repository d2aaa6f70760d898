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

    def __init__(
        self, net: MLP, name: str, version: str, columns: npt.NDArray[np.intp] | None = None
    ) -> None:
        """``columns``: the engine's feature columns the network reads (all when None)."""
        self.net = net
        self.columns = columns
        self.name = name
        self.version = version

    def start_day(self, plan: DayPlan) -> None:
        return None

    def values(self, state: SiteState, observations: ObservationBatch) -> npt.NDArray[np.float64]:
        x = observations if self.columns is None else observations[:, self.columns]
        return self.net(x).astype(np.float64)
