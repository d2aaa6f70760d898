"""The worker process behind ``chuteflow worker``: the sites it serves and the faust app it runs.

Argument parsing lives in :mod:`chuteflow.cli.worker`; this module only builds sites and runs
the worker. Tests start workers as processes through the installed ``chuteflow`` command
(:mod:`replay.workers`), the same way an operator does.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import faust

    from contracts.control import PolicyRef
    from contracts.limits import InputLimits
    from decision.artifacts import PolicyArtifact
    from floor.daytypes import FloatArray
    from floor.scenario import Scenario
    from stream.app import AppSettings
    from stream.processor import SiteRuntime


DEFAULT_DEADLINE_S = 0.2
"""Inference deadline of a served policy: a large site's ONNX policy answers in ~1 ms, so 200 ms
is only ever missed by a policy that is broken or starved."""


def make_site(
    scenario: Scenario,
    policy: str | PolicyArtifact,
    guardrails: str | None,
    *,
    fallback: str | None = "proportional",
    deadline_s: float | None = DEFAULT_DEADLINE_S,
    fetch: Callable[[PolicyRef], PolicyArtifact] | None = None,
) -> SiteRuntime:
    """A site the worker serves: tracker layout, engine and the day-type groups' shares.

    ``policy`` is a built-in name, an ``.onnx`` path or an artifact from the policy store
    (``stream.policy_store.fetch_policy``): what serves until the control topic routes the
    site. ``fetch`` gets a routed store version's artifact (None: only built-ins can be
    routed); ``fallback`` and ``deadline_s`` apply to every engine of the site.

    Raises:
        GuardrailError, PolicyError: guardrails that do not fit the scenario, or a policy
            that cannot be served (one line each, see ``chuteflow.cli``).
    """
    from decision.build import PolicyError, build_engine
    from decision.engine import DecisionEngine
    from decision.tracker import TrackerConfig
    from floor.daytypes import default_groups
    from floor.forecast import honest_plan
    from floor.site import load_site
    from stream.processor import SiteRuntime

    site = load_site(scenario, guardrails)
    engine = build_engine(site, policy, fallback=fallback, deadline_s=deadline_s)
    groups = default_groups(scenario)

    def engine_for(ref: PolicyRef) -> DecisionEngine:
        deadline = deadline_s
        if ref.sha256 is None:
            return build_engine(site, ref.name, fallback=fallback, deadline_s=deadline)
        if fetch is None:
            raise PolicyError(f"{ref.label}: this worker cannot fetch store policies")
        return build_engine(site, fetch(ref), fallback=fallback, deadline_s=deadline)

    def day_shares(group: int) -> FloatArray:
        if not 0 <= group < groups.probs.shape[0]:
            raise IndexError(group)
        return groups.expected_share(group)

    return SiteRuntime(
        config=TrackerConfig.from_scenario(scenario),
        engine=engine,
        day_shares=day_shares,
        plan_for=lambda day, key: honest_plan(groups, day, key),
        interval_minutes=scenario.interval_minutes,
        engine_for=engine_for,
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
    prefetch: Callable[[list[bytes]], None] | None = None,
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
    _apply_routes(sites, settings)
    app = make_app(settings)
    table = make_table(app)
    processor = StreamProcessor(
        dict(sites),
        stall_seconds=stall_seconds,
        live_grace_seconds=live_grace_seconds,
        worker_id=f"{socket.gethostname()}/{os.getpid()}",
        limits=limits,
    )
    if prefetch is not None:
        processor.prefetch = prefetch
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


def _apply_routes(sites: Mapping[str, SiteRuntime], settings: AppSettings) -> None:
    """Start every site on its current route from the control topic (a new consumer group
    that starts at the end of the topics would never read it). A site restored from its table
    snapshot takes the snapshot's route instead, and later control records in offset order."""
    from floor.errors import ChuteflowError
    from stream.routing import read_routes

    log = logging.getLogger(__name__)
    for site_id, route in read_routes(settings.kafka_client()).items():
        site = sites.get(site_id)
        if site is None:
            continue
        try:
            site.set_route(route)
        except (ChuteflowError, ValueError) as error:
            log.error("site %s: route revision %s refused: %s", site_id, route.revision, error)
            continue
        log.info(
            "site %s: route revision %s, %s serving", site_id, route.revision, route.serving.label
        )


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


__all__ = ["DEFAULT_DEADLINE_S", "make_site", "run_worker"]
