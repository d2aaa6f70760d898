"""The group count's stated criteria: silhouette (default) and the gap statistic with a minimum
group size, both deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from floor.scenario import load_scenario
from onboarding.groups import choose_groups, gap_choice, k_range, min_group_days
from onboarding.history import read_history
from tests.onboarding.onboard_site import make_site


def _blobs(sizes: list[int], seed: int = 3) -> np.ndarray:
    """Well-separated Gaussian blobs in 6-D, one per size."""
    rng = np.random.default_rng(seed)
    centres = np.eye(6)[: len(sizes)] * 10.0
    return np.concatenate(
        [c + rng.normal(0.0, 0.5, size=(n, 6)) for c, n in zip(centres, sizes, strict=True)]
    )


def test_the_gap_statistic_finds_planted_groups_and_is_deterministic() -> None:
    points = _blobs([40, 40, 40, 40])
    k, table = gap_choice(points, range(2, 8))
    assert k == 4, table
    assert gap_choice(points, range(2, 8)) == (k, table)


def test_a_group_smaller_than_the_minimum_is_not_a_day_type() -> None:
    """Four blobs, one of them 3 days: the gap would isolate it, the size rule does not."""
    points = _blobs([60, 60, 60, 3])
    assert min_group_days(len(points)) == 7
    k, table = gap_choice(points, range(2, 8))
    assert table[4][2] == 3  # k = 4 isolates the 3 odd days
    assert k == 3, table
    assert all(table[j][2] < 7 for j in range(4, 8))


def test_the_gap_criterion_on_a_site_is_recorded_with_its_table(tmp_path: Path) -> None:
    site, folder = make_site(tmp_path, days=60)
    scenario = load_scenario(site)
    fit = read_history(folder, scenario, 1, 1, 14).split.fit
    counts, labels = [d.counts for d in fit], [d.day.isoformat() for d in fit]
    candidates = k_range(len(fit), 2, 12)
    choice = choose_groups(counts, labels, "tiny", candidates, {}, "gap")
    assert choice.gaps is not None and set(choice.gaps) == set(candidates)
    admissible = [k for k, (_, _, n) in choice.gaps.items() if n >= min_group_days(len(fit))]
    # an admissible k, or (no k's groups all hold a week) the fewest groups
    assert choice.k in admissible if admissible else choice.k == min(candidates)
    assert choice.criterion.startswith("gap statistic")
    assert "groups of >= 7 days" in choice.criterion
    assert choice.groups.meta["k_criterion"] == "gap" and choice.groups.n_groups == choice.k
    again = choose_groups(counts, labels, "tiny", candidates, {}, "gap")
    assert again.k == choice.k and again.gaps == choice.gaps
    default = choose_groups(counts, labels, "tiny", candidates, {})
    assert default.gaps is None and default.criterion.startswith("mean silhouette")
    with pytest.raises(ValueError, match="unknown groups criterion"):
        choose_groups(counts, labels, "tiny", candidates, {}, "elbow")
