"""The shared feature function: shape, scaling and the meaning of each column."""

from __future__ import annotations

import numpy as np

from decision.features import FEATURE_NAMES, N_FEATURES, FeatureScale, observe
from decision.state import IDLE, SiteState


def _state() -> SiteState:
    return SiteState(
        interval_index=3,
        n_intervals=12,
        chute_owner=np.array([0, 0, 1, IDLE, 2], dtype=np.int64),
        chute_available=np.array([True, False, True, True, True]),
        chute_open=np.array([True, False, False, True, True]),
        arrivals=np.array([[10, 0, 5], [20, 0, 5], [30, 0, 5]], dtype=np.int64),
        recirculated=np.array([0, 4, 0], dtype=np.int64),
        backlog=np.array([0, 2, 0], dtype=np.int64),
        expected_share=np.array([0.5, 0.25, 0.25]),
    )


def test_observation_columns_mean_what_their_names_say() -> None:
    scale = FeatureScale(packages_per_destination_interval=10.0, max_chutes_per_destination=4)
    obs = observe(_state(), scale)
    assert obs.shape == (3, N_FEATURES) and obs.dtype == np.float32
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}
    np.testing.assert_allclose(obs[:, col["arrivals_lag0"]], [1.0, 0.0, 0.5])
    np.testing.assert_allclose(obs[:, col["arrivals_lag2"]], [3.0, 0.0, 0.5])
    np.testing.assert_allclose(obs[:, col["recirculated"]], [0.0, 0.4, 0.0])
    np.testing.assert_allclose(obs[:, col["chutes_held"]], [0.5, 0.25, 0.25])
    np.testing.assert_allclose(obs[:, col["chutes_held_in_service"]], [0.25, 0.25, 0.25])
    np.testing.assert_allclose(obs[:, col["chutes_open"]], [0.25, 0.0, 0.25])
    np.testing.assert_allclose(obs[:, col["expected_share"]], [1.5, 0.75, 0.75])
    # 4 chutes in service, 3 of them held: one free chute out of 5
    np.testing.assert_allclose(obs[:, col["free_chutes"]], 0.2)
    np.testing.assert_allclose(obs[:, col["time_of_day"]], 0.25)
    np.testing.assert_allclose(obs[:, col["plan_trust"]], 1.0)  # a plan used as given
    from dataclasses import replace

    trust = observe(replace(_state(), plan_trust=0.3), scale)[:, col["plan_trust"]]
    np.testing.assert_allclose(trust, 0.3)


def test_feature_sets_name_columns_the_engine_computes() -> None:
    import pytest

    from decision.features import FEATURE_SETS, feature_columns

    assert FEATURE_SETS["trust"] == FEATURE_NAMES
    assert FEATURE_SETS["base"] == FEATURE_NAMES[: FEATURE_NAMES.index("plan_trust")]
    assert list(feature_columns(("plan_trust", "arrivals_lag0"))) == [N_FEATURES - 1, 0]
    for bad in (("nope",), ("backlog", "backlog"), ()):
        with pytest.raises(ValueError, match="this engine computes"):
            feature_columns(bad)


def test_scale_for_site_is_mean_packages_per_destination_interval() -> None:
    scale = FeatureScale.for_site(1200.0, 30.0, 20, 4)
    assert scale.packages_per_destination_interval == 30.0
