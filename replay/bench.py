"""``chuteflow bench replay``: a day at max speed through a broker and a worker, timed.

Argument parsing (and starting a throw-away local broker when none is given) lives in
:mod:`chuteflow.cli.bench`.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.clients import KafkaClientConfig


def bench_replay(
    scenario_name: str,
    group: int,
    seed: int,
    bootstrap: str | KafkaClientConfig,
    max_intervals: int | None = None,
    policy: str = "proportional",
) -> dict[str, object]:
    """Replay a day at max speed through the broker at ``bootstrap`` and a worker process;
    time it. The worker is a fresh consumer group started before the clock runs."""
    from floor.daytypes import default_groups
    from floor.scenario import load_scenario
    from replay.loop import day_type_group, replay_day
    from replay.workers import running_worker
    from stream.admin import ensure_topics
    from twin.groups import sample_day

    scenario = load_scenario(scenario_name)
    groups = default_groups(scenario)
    demand = sample_day(groups, group, scenario, seed=seed)
    ensure_topics(bootstrap)
    with tempfile.TemporaryDirectory(prefix="chuteflow-bench-") as tmp:
        app_id = f"bench-{uuid.uuid4().hex[:8]}"
        with running_worker(
            bootstrap, [scenario_name], Path(tmp) / "worker", app_id=app_id, policy=policy
        ):
            t0 = time.monotonic()
            result = replay_day(
                demand,
                seed,
                bootstrap,
                day_type_group(groups, demand),
                max_intervals=max_intervals,
                allocation_timeout_s=600.0,
            )
            wall = time.monotonic() - t0
    intervals = len(result.allocations)
    return {
        "scenario": scenario_name,
        "intervals": intervals,
        "of_intervals": scenario.n_intervals,
        "events": result.events_published,
        "wall_s": round(wall, 2),
        "events_per_s": round(result.events_published / wall, 1),
        "waiting_for_allocations_s": round(result.waited_seconds, 2),
        "kpis": result.kpis.to_dict() if intervals == scenario.n_intervals else None,
    }


__all__ = ["bench_replay"]
