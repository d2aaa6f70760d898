"""The worker process behind ``chuteflow worker``: the sites it serves and the faust app it runs.

Argument parsing lives in :mod:`chuteflow.cli.worker`; this module only builds sites and runs
the worker. Tests start workers as processes through the installed ``chuteflow`` command
(:mod:`replay.workers`), the same way an operator does.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import faust

    from contracts.control import PolicyRef
    from contracts.limits import InputLimits
    from contracts.sites import SiteCatalogEntry
    from decision.artifacts import PolicyArtifact
    from floor.daytypes import DayTypeGroups, FloatArray
    from floor.scenario import Scenario
    from stream.app import AppSettings
    from stream.processor import SiteRuntime
    from stream.site_catalog import CatalogFollower


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
    groups: DayTypeGroups | None = None,
) -> SiteRuntime:
    """A site the worker serves: tracker layout, engine and the day-type groups' shares.

    ``policy`` is a built-in name, an ``.onnx`` path or an artifact from the policy store
    (``stream.policy_store.fetch_policy``): what serves until the control topic routes the
    site. ``fetch`` gets a routed store version's artifact (None: only built-ins can be
    routed); ``fallback`` and ``deadline_s`` apply to every engine of the site. ``groups``:
    the site's day-type groups (a site catalog entry's), else
    :func:`floor.daytypes.default_groups`.

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
    shapes = default_groups(scenario) if groups is None else groups
    shapes.check_fits(scenario)

    def engine_for(ref: PolicyRef) -> DecisionEngine:
        deadline = deadline_s
        if ref.sha256 is None:
            return build_engine(site, ref.name, fallback=fallback, deadline_s=deadline)
        if fetch is None:
            raise PolicyError(f"{ref.label}: this worker cannot fetch store policies")
        return build_engine(site, fetch(ref), fallback=fallback, deadline_s=deadline)

    def day_shares(group: int) -> FloatArray:
        if not 0 <= group < shapes.probs.shape[0]:
            raise IndexError(group)
        return shapes.expected_share(group)

    return SiteRuntime(
        config=TrackerConfig.from_scenario(scenario),
        engine=engine,
        day_shares=day_shares,
        plan_for=lambda day, key: honest_plan(shapes, day, key),
        interval_minutes=scenario.interval_minutes,
        engine_for=engine_for,
    )


def build_site(
    entry: SiteCatalogEntry,
    *,
    fetch: Callable[[PolicyRef], PolicyArtifact] | None,
    fallback: str | None = "proportional",
    deadline_s: float | None = DEFAULT_DEADLINE_S,
) -> SiteRuntime:
    """The runtime a worker serves for ``entry``: the site file checked as strictly as
    ``chuteflow site add`` checks it, the entry's groups (else the shipped ones of the site's
    name) and its policy (a store version through ``fetch``).

    Raises:
        ChuteflowError: the entry cannot be served (one line: site, revision, field, problem).
    """
    from floor.daytypes import DayTypeGroups
    from floor.site_file import load_site_text
    from stream.site_catalog import SiteCatalogError

    where = f"site {entry.site_id} revision {entry.revision}"
    site = load_site_text(entry.site_yaml, where)
    scenario = site.scenario
    if scenario.site_id != entry.site_id:
        raise SiteCatalogError(
            f"{where}: site_id: the site file's is {scenario.site_id!r}, not the entry's"
        )
    data = entry.groups_bytes()
    groups = None if data is None else DayTypeGroups.from_bytes(data, f"{where}: groups")
    ref = entry.policy
    if ref.sha256 is None:
        policy: str | PolicyArtifact = ref.name
    elif fetch is None:
        raise SiteCatalogError(f"{where}: {ref.label}: this worker cannot fetch store policies")
    else:
        policy = fetch(ref)
    return make_site(
        scenario,
        policy,
        None,
        fallback=fallback,
        deadline_s=deadline_s,
        fetch=fetch,
        groups=groups,
    )


def run_worker(
    sites: Mapping[str, SiteRuntime],
    settings: AppSettings,
    *,
    stall_seconds: float,
    live_grace_seconds: float | None,
    ready_file: Path | None,
    loglevel: str = "INFO",
    log_format: str = "text",
    library_loglevel: str = "WARNING",
    limits: InputLimits | None = None,
    metrics_port: int | None = None,
    ready_max_lag: int | None = None,
    prefetch: Callable[[list[bytes]], None] | None = None,
    catalog: CatalogFollower | None = None,
) -> None:
    """Create the topics, then run the faust worker for ``sites`` until it is stopped.

    With ``catalog`` (``chuteflow worker --catalog``), the site catalog's sites are served
    besides ``sites`` (an entry for one of ``sites`` is ignored): read whole before the app
    starts, then followed (``stream/site_catalog.py``).

    Logging is set up first (:mod:`stream.worker_log`: the worker's own lines at
    ``loglevel``, faust's and aiokafka's at ``library_loglevel``, ``text`` or ``json``). With
    ``metrics_port``, one HTTP endpoint serves ``/metrics`` (:mod:`stream.metrics`),
    ``/healthz`` and ``/readyz`` (:mod:`stream.health`, ready within ``ready_max_lag``
    records of each input partition's end).
    """
    import faust

    from contracts.topics import PARTITIONS
    from stream.admin import ensure_topics
    from stream.agents import register
    from stream.app import make_app, make_table, worker_topics
    from stream.health import DEFAULT_READY_MAX_LAG, Readiness, serve
    from stream.inputs import INPUT_TOPICS
    from stream.metrics import WorkerMetrics, faust_lag
    from stream.observations import DecisionObserved
    from stream.processor import StreamProcessor
    from stream.worker_log import configure_logging, log_dead_letter, log_decision, log_event

    configure_logging(loglevel, log_format, library_level=library_loglevel)
    # Also the credentials check: a wrong password is a one-line KafkaAuthError here, not a
    # faust start-up traceback that never says "authentication" (design-facts.md#kafka-auth).
    # With the topics made beforehand (``chuteflow kafka topics``) it only reads metadata.
    ensure_topics(settings.kafka_client(), worker_topics(settings.app_id))
    pinned = sorted(sites)
    if catalog is not None:
        sites = {**catalog.load(), **sites}
    # a catalog site starts on its entry's policy until a route says otherwise: no
    # worker-default route for it (that route would outlive the next entry's policy)
    _apply_routes(sites, settings, defaults_for=pinned)
    app = make_app(settings)
    table = make_table(app)
    processor = StreamProcessor(
        dict(sites),
        stall_seconds=stall_seconds,
        live_grace_seconds=live_grace_seconds,
        worker_id=f"{socket.gethostname()}/{os.getpid()}",
        limits=limits,
        on_dead_letter=log_dead_letter,
        partitions=PARTITIONS,
    )
    if prefetch is not None:
        processor.prefetch = prefetch
    input_names = frozenset(s.name for s in INPUT_TOPICS)
    readiness = Readiness(
        lag=faust_lag(app, input_names),
        max_lag=DEFAULT_READY_MAX_LAG if ready_max_lag is None else ready_max_lag,
        busy=lambda: bool(app.rebalancing or getattr(app, "in_recovery", False)),
    )
    observers: list[Callable[[DecisionObserved], None]] = [log_decision]
    if metrics_port is not None:
        metrics = WorkerMetrics(processor, readiness.lag, readiness.ready)
        observers.append(metrics.observe)
        serve(metrics.registry, readiness, metrics_port)

    def observe(decision: DecisionObserved) -> None:
        for observer in observers:
            observer(decision)

    processor.on_decision = observe
    register(
        app,
        processor,
        table,
        ready_file=ready_file,
        readiness=readiness,
        catalog=None if catalog is None else catalog.drain,
    )
    app.timer(interval=5.0)(_roll_log_windows)  # a burst's summary also when it has stopped
    readiness.policies_loaded = True  # every site's engine and route are built by now
    text, fields = startup_summary(sites, settings, metrics_port)
    log_event(logging.getLogger("chuteflow.worker"), logging.INFO, text, fields)
    worker = _quiet_worker(faust.Worker)(app, quiet=True, override_logging=False)
    if catalog is not None:
        catalog.start()
    worker.execute_from_commandline()


def startup_summary(
    sites: Mapping[str, SiteRuntime], settings: AppSettings, metrics_port: int | None
) -> tuple[str, dict[str, object]]:
    """The one line that says what this worker serves and where (text, JSON fields)."""
    from contracts.topics import ALLOCATIONS, DEAD_LETTER, DECISIONS_AUDIT, SHADOW
    from stream.app import changelog_topic
    from stream.inputs import INPUT_TOPICS

    served = {}
    for site_id, site in sorted(sites.items()):
        engine = site.serving()
        fallback = engine.fallback
        served[site_id] = {
            "policy": f"{engine.policy.name}@{engine.policy.version}",
            "route_revision": site.route_revision,
            "shadows": [ref.label for ref in site.route.shadows] if site.route else [],
            "fallback": "none" if fallback is None else f"{fallback.name}@{fallback.version}",
        }
    inputs = [spec.name for spec in INPUT_TOPICS]
    outputs = [s.name for s in (ALLOCATIONS, SHADOW, DECISIONS_AUDIT, DEAD_LETTER)]
    changelog = changelog_topic(settings.app_id).name
    fields: dict[str, object] = {
        "event": "worker_started",
        "sites": served,
        "bootstrap": settings.bootstrap,
        "group": settings.app_id,
        "input_topics": inputs,
        "output_topics": outputs,
        "changelog_topic": changelog,
        "metrics_port": metrics_port,
    }
    listed = "; ".join(
        f"{site_id} policy={s['policy']} route_revision={s['route_revision']} "
        f"shadows={','.join(s['shadows']) or '-'} fallback={s['fallback']}"  # type: ignore[arg-type]
        for site_id, s in served.items()
    )
    text = (
        f"worker starting: sites [{listed}] bootstrap={settings.bootstrap} "
        f"group={settings.app_id} inputs={','.join(inputs)} outputs={','.join(outputs)} "
        f"changelog={changelog} metrics_port={metrics_port or '-'}"
    )
    return text, fields


def _apply_routes(
    sites: Mapping[str, SiteRuntime], settings: AppSettings, defaults_for: Collection[str]
) -> None:
    """Start every site on its current route from the control topic (a new consumer group
    that starts at the end of the topics would never read it). A site restored from its table
    snapshot takes the snapshot's route instead, and later control records in offset order.
    Sites of ``defaults_for`` without a route get a ``worker-default`` one."""
    from floor.errors import ChuteflowError
    from stream.routing import publish_routes, read_routes, servable_ref, worker_default_routes

    log = logging.getLogger(__name__)
    routes = read_routes(settings.kafka_client())
    # a site with no route shows what serves it (``worker-default``), for `policy routes`
    # and so a rollback can return to it (stream/routing.py)
    served = {
        site_id: servable_ref(site.serving().policy.name, site.serving().policy_sha256)
        for site_id, site in sites.items()
        if site_id in defaults_for
    }
    defaults = worker_default_routes(routes, served, f"{socket.gethostname()}/{os.getpid()}")
    if defaults:
        publish_routes(settings.kafka_client(), defaults)
        routes.update({route.site_id: route for route in defaults})
    for site_id, route in routes.items():
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


def _quiet_worker(base: type[faust.Worker]) -> type[faust.Worker]:
    """``faust.Worker`` without its terminal spinner, flushing the log's repeat counts at exit.

    faust makes a spinner whatever ``quiet`` says and, when it sets up logging itself, hooks
    it to every record; the spinner writes terminal control sequences (``ESC[?25l``) even
    to a file or a pipe. The worker sets logging up itself (:mod:`stream.worker_log`,
    ``override_logging=False``) and drops the spinner.
    """
    from stream.logs import flush_installed

    class Worker(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            self.spinner = None

        def on_worker_shutdown(self) -> None:
            super().on_worker_shutdown()
            flush_installed()

    return Worker


__all__ = ["DEFAULT_DEADLINE_S", "build_site", "make_site", "run_worker", "startup_summary"]
