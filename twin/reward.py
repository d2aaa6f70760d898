"""The one reward: what an interval cost each destination, in unit-free terms.

Destination ``d``'s reward is ``-recirculated_d / scale`` with ``scale`` the mean first
inductions of one destination in one interval on a typical day
(``decision.features.FeatureScale``). Recirculation events, not distinct packages: a package
that goes round twice cost the floor twice. The scale keeps rewards near -1 for "lost a typical
interval's volume" on every site size. The PettingZoo environment and the trainers both call
:func:`destination_rewards`, so they learn the same thing.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from decision.features import FeatureScale
from twin.sim import IntervalResult


def destination_rewards(result: IntervalResult, scale: FeatureScale) -> npt.NDArray[np.float32]:
    """[D] each destination's reward for the interval in ``result`` (float32)."""
    return (-result.recirculated / scale.packages_per_destination_interval).astype(np.float32)


__all__ = ["destination_rewards"]
