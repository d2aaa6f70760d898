"""The worker process behind ``chuteflow worker``: the sites it serves and the faust app it runs.

Argument parsing lives in :mod:`chuteflow.cli.worker`; this module only builds sites and runs
the worker. Tests start workers as processes through the installed ``chuteflow`` command
(:mod:`replay.workers`), the same way an operator does.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import faust

    from contracts.limits import InputLimits
    from decision.artifacts import PolicyArtifact
    from floor.daytypes import FloatArray
    from floor.scenario import Scenario
    from stream.app import AppSettings
    from stream.processor import SiteRuntime


def make_site(
    scenario: Scenario, policy: str | PolicyArtifact, guardrails: str | None
) -> SiteRuntime:
    """A site the worker serves: tracker layout, engine and the day-type groups' shares.

    ``policy`` is a built-in name, an ``.onnx`` path or an artifact from the policy store
    (``stream.policy_store.fetch_policy``).

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
    limits: InputLimits | None = None,
    metrics_port: int | None = None,
) -> None:
    """Create the topics, then run the faust worker for ``sites`` until it is stopped.

    With ``metrics_port``, a Prometheus endpoint serves the worker's metrics
    (:mod:`stream.metrics`) on that port.
    """
    import faust

    from stream.admin import ensure_topics
    from stream.agents import register
    from stream.app import make_app, make_table
    from stream.processor import StreamProcessor

    # Also the credentials check: a wrong password is a one-line KafkaAuthError here, not a
    # faust start-up traceback that never says "authentication" (design-facts.md#kafka-auth).
    ensure_topics(settings.kafka_client())
    app = make_app(settings)
    table = make_table(app)
    processor = StreamProcessor(
        dict(sites),
        stall_seconds=stall_seconds,
        live_grace_seconds=live_grace_seconds,
        worker_id=f"{socket.gethostname()}/{os.getpid()}",
        limits=limits,
    )
    if metrics_port is not None:
        from stream.metrics import WorkerMetrics, faust_lag
        from stream.processor import INPUT_TOPICS

        metrics = WorkerMetrics(processor, faust_lag(app, frozenset(s.name for s in INPUT_TOPICS)))
        processor.on_decision = metrics.observe
        metrics.serve(metrics_port)
    register(app, processor, table, ready_file=ready_file)
    app.timer(interval=5.0)(_roll_log_windows)  # a burst's summary also when it has stopped
    worker = _bounded_logging_worker(faust.Worker)(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()


async def _roll_log_windows() -> None:
    from stream.logs import roll_installed

    roll_installed()


def _bounded_logging_worker(base: type[faust.Worker]) -> type[faust.Worker]:
    """``faust.Worker`` that bounds repeated log records once faust has set up logging.

    faust (mode) configures the root logger's handlers in ``_setup_logging`` during the
    worker's first start and then calls ``on_setup_root_logger``; that is the hook where
    the handlers exist. Without the bound, aiokafka's reconnect loops log every attempt while
    the broker is away (:mod:`stream.logs`).
    """
    from stream.logs import flush_installed, install_repeat_filter

    class Worker(base):  # type: ignore[misc, valid-type]
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            install_repeat_filter(logger)

        def on_worker_shutdown(self) -> None:
            super().on_worker_shutdown()
            flush_installed()

    return Worker


__all__ = ["make_site", "run_worker"]
