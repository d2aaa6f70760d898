"""A tiny site and its history for the onboarding tests: 8 destinations on 6 chutes (fewer
chutes than destinations), a 3-hour shift of 30-minute intervals, 40 days of history."""

from __future__ import annotations

from pathlib import Path

from twin.days_cli import generate_days

QUICK = ["--quick", "--workers", "1"]
"""``site onboard`` flags for a seconds-long, serial run (what these tests onboard with)."""

SITE = """\
name: tiny
site_id: site-tiny
eject_chutes: 6
recirculation_chutes: 1
day_start: "2025-01-06T07:00:00Z"
day_hours: 3
interval_minutes: 30
tick_seconds: 30
default_groups: 3
mean_packages_per_hour: 500
induction_stations: 2
station_packages_per_hour: 800
max_chutes_per_destination: 3
travel_seconds: 60
chute_packages_per_minute: 20
container_capacity: 100
swap_seconds: 90
move_seconds: 120
reinduction_seconds: 120
max_attempts: 3
chute_failures_per_hour: 0.01
repair_minutes: 20
destinations: [D1, D2, D3, D4, D5, D6, D7, D8]
guardrails:
  version: tiny-1
  min_chutes_per_destination: 0
  max_chutes_per_destination: 3
  max_moves_per_interval: 3
"""


def make_site(folder: Path, days: int = 40, text: str = SITE) -> tuple[Path, Path]:
    """(site file, history folder) under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    site = folder / "tiny.yaml"
    site.write_text(text)
    history = folder / "history"
    generate_days(str(site), "2024-01-01", days, history, 7, False)
    return site, history


def groups_file(path: Path, labels: list[list[str]], destinations: int = 8) -> Path:
    """A groups file for the tiny site (6 intervals): one group per entry of ``labels``."""
    import numpy as np

    from floor.daytypes import DayTypeGroups

    rng = np.random.default_rng(7)
    probs = rng.uniform(0.5, 1.5, size=(len(labels), 6, destinations))
    probs /= probs.sum(axis=(1, 2), keepdims=True)
    n = len(labels)
    DayTypeGroups(
        "tiny", probs, np.full(n, 1500.0), np.full(n, 100.0), tuple(map(tuple, labels))
    ).save(path)
    return path
