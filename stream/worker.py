"""The worker process behind ``chuteflow worker``: the sites it serves and the faust app it runs.

Argument parsing lives in :mod:`chuteflow.cli.worker`; this module only builds sites and runs
the worker. Tests start workers as processes through the installed ``chuteflow`` command
(:mod:`replay.workers`), the same way an operator does.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from floor.daytypes import FloatArray
    from floor.scenario import Scenario
    from stream.app import AppSettings
    from stream.processor import SiteRuntime


def make_site(scenario: Scenario, policy: str, guardrails: str | None) -> SiteRuntime:
    """A site the worker serves: tracker layout, engine and the day-type groups' shares.

    Raises:
        GuardrailError, PolicyError: guardrails that do not fit the scenario, or a policy
            that cannot be served (one line each, see ``chuteflow.cli``).
    """
    from decision.build import build_engine
    from decision.tracker import TrackerConfig
    from floor.daytypes import default_groups
    from floor.site import load_site
    from stream.processor import SiteRuntime

    engine = build_engine(load_site(scenario, guardrails), policy)
    groups = default_groups(scenario)

    def day_shares(group: int) -> FloatArray:
        if not 0 <= group < groups.probs.shape[0]:
            raise IndexError(group)
        return groups.expected_share(group)

    return SiteRuntime(
        config=TrackerConfig.from_scenario(scenario),
        engine=engine,
        day_shares=day_shares,
        interval_minutes=scenario.interval_minutes,
    )


def run_worker(
    sites: Mapping[str, SiteRuntime],
    settings: AppSettings,
    *,
    stall_seconds: float,
    live_grace_seconds: float | None,
    ready_file: Path | None,
    loglevel: str,
) -> None:
    """Create the topics, then run the faust worker for ``sites`` until it is stopped."""
    import faust

    from stream.admin import ensure_topics
    from stream.agents import register
    from stream.app import make_app, make_table
    from stream.processor import StreamProcessor

    ensure_topics(settings.bootstrap)
    app = make_app(settings)
    table = make_table(app)
    processor = StreamProcessor(
        dict(sites),
        stall_seconds=stall_seconds,
        live_grace_seconds=live_grace_seconds,
        worker_id=f"{socket.gethostname()}/{os.getpid()}",
    )
    register(app, processor, table, ready_file=ready_file)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()


__all__ = ["make_site", "run_worker"]
