"""The shadow report's plot: both policies' chutes and estimated recirculation over the day."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: reports run on headless machines and in CI
import matplotlib.pyplot as plt
import numpy as np

from floor.scenario import Scenario
from rollout.shadow import ShadowComparison


def shadow_plot(scenario: Scenario, result: ShadowComparison, path: Path) -> Path:
    """Top: chutes the day's busiest destination holds under each policy (its own twin run),
    over the floor's arrivals. Bottom: recirculation rate per interval, floor and twins."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9.0, 6.5), sharex=True)
    k = result.closed_through + 1
    hours = np.arange(k) * scenario.interval_minutes / 60.0
    runs = list(result.runs.values())
    busiest = int(np.argmax(sum(run.counts.sum(axis=0) for run in runs))) if runs else 0
    for run in runs:
        top.step(hours, run.counts[:, busiest], where="post", label=f"{run.label}")
    top.set_ylabel(f"chutes of {scenario.destinations[busiest]}")
    top.legend(loc="upper left", fontsize=8)
    top.set_title(f"Shadow report, {result.site_id} {result.day_key}")
    floor_rate = result.floor_recirculated / np.maximum(result.floor_inducted, 1)
    bottom.step(hours, 100 * floor_rate, where="post", color="black", label="floor (reported)")
    for run in runs:
        rate = run.recirculated / np.maximum(run.first_inductions, 1)
        bottom.step(hours, 100 * rate, where="post", label=f"{run.label} (twin)")
    bottom.set_xlabel("hours into the day")
    bottom.set_ylabel("recirculation rate per interval (%)")
    bottom.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["shadow_plot"]
