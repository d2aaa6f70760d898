"""Plots a sortation engineer wants: recirculation per day type, and chutes over a spike day."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: evaluation runs on headless machines and in CI
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def group_bars(
    summary: Mapping[str, object],
    path: Path,
    title: str = "Recirculation rate per day type",
    xlabel: str = "day-type group",
) -> Path:
    """Recirculation rate per group, one bar per policy, worst group visible at a glance."""
    policies = list(summary)
    groups: list[int] = []
    for policy in policies:
        body = summary[policy]
        assert isinstance(body, dict)
        groups += [g for g in body["per_group"] if g not in groups]
    width = 0.8 / max(len(policies), 1)
    width_in = min(14.0, max(6.0, 0.2 * len(groups) * len(policies)))
    fig, ax = plt.subplots(figsize=(width_in, 4.5))
    x = np.arange(len(groups))
    for index, policy in enumerate(policies):
        body = summary[policy]
        assert isinstance(body, dict)
        per_group = body["per_group"]
        rates = [
            100 * per_group[g]["recirculation_rate"] if g in per_group else np.nan for g in groups
        ]
        ax.bar(x + index * width, rates, width, label=policy)
    ax.set_xticks(x + width * (len(policies) - 1) / 2, [str(g) for g in groups])
    ax.set_xlabel(xlabel)
    return _rate_axes_saved(fig, ax, title, path)


def policy_bars(
    summary: Mapping[str, object], path: Path, title: str = "Recirculation rate per policy"
) -> Path:
    """For days that are not samples of a group (real history days): a bar per policy, the
    mean recirculation rate over the days, with a dot at the mean of the worst 20% of days
    (CVaR) and one at the worst nearest group's mean."""
    policies = list(summary)
    means, tails, worst = [], [], []
    for policy in policies:
        body = summary[policy]
        assert isinstance(body, dict)
        overall = body["overall"]["recirculation_rate"]
        means.append(100 * overall["mean_over_days"])
        tails.append(100 * overall["cvar20"])
        worst.append(100 * overall["worst_group_value"])
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(policies) + 2.0), 4.5))
    x = np.arange(len(policies))
    ax.bar(x, means, 0.6, label="mean over days")
    ax.scatter(x, tails, color="black", zorder=3, label="CVaR 20% of days")
    ax.scatter(x, worst, color="red", marker="x", zorder=3, label="worst nearest group")
    rotated = len(policies) > 3
    ax.set_xticks(x, policies, rotation=20 if rotated else 0, ha="right" if rotated else "center")
    return _rate_axes_saved(fig, ax, title, path)


def spike_day_allocation(
    chutes: Mapping[str, npt.NDArray[np.int64]],
    arrivals: npt.NDArray[np.int64],
    interval_minutes: float,
    destination: str,
    path: Path,
) -> Path:
    """Chutes the spiking destination holds per interval under each policy, over its arrivals."""
    fig, ax = plt.subplots(figsize=(8.0, 4.0))
    hours = np.arange(arrivals.shape[0]) * interval_minutes / 60.0
    for policy, series in chutes.items():
        ax.step(hours, series, where="post", label=f"{policy}: chutes")
    ax.set_xlabel("hours into the day")
    ax.set_ylabel(f"chutes held by {destination}")
    twin_ax = ax.twinx()
    twin_ax.bar(
        hours,
        arrivals,
        width=interval_minutes / 60.0,
        align="edge",
        alpha=0.2,
        color="grey",
        label="arrivals",
    )
    twin_ax.set_ylabel("first inductions per interval")
    ax.legend(loc="upper left")
    ax.set_title(f"Spike day: allocation of {destination}")
    return _saved(fig, path)


def _rate_axes_saved(fig: Figure, ax: Axes, title: str, path: Path) -> Path:
    """A recirculation-rate chart's labels and legend, then the file."""
    ax.set_ylabel("recirculation rate (%)")
    ax.legend()
    ax.set_title(title)
    return _saved(fig, path)


def _saved(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
