"""``chuteflow ops serve``: the live operations page (``ops/``).

The page's promote, abort and rollback buttons run ``chuteflow policy promote|abort|rollback``
themselves: :func:`policy_actions` parses the same arguments through the ``policy`` verb's own
parser and calls its function, so the page can never drift from the CLI (same checks, same
routes, same wait for the worker's answer).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from typing import TYPE_CHECKING

from chuteflow.cli._shared import Subparsers, add_kafka_options, port

if TYPE_CHECKING:
    from ops.server import Actions

NAME = "ops"
TOKEN_ENV = "CHUTEFLOW_OPS_TOKEN"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="the live operations page")
    ops_sub = parser.add_subparsers(dest="ops_command", required=True)
    serve = ops_sub.add_parser(
        "serve",
        help="serve a web page with every site's route, canaries and their gate checks, KPIs "
        "by interval, route history, worker health and dead letters, updated live from Kafka",
    )
    serve.add_argument("--port", type=port, default=8750, help="HTTP port (default 8750; 0: any)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument(
        "--worker-metrics",
        action="append",
        default=[],
        metavar="URL",
        help="a worker's metrics endpoint (http://HOST:PORT of `worker --metrics-port`): its "
        "/readyz and /metrics are shown; repeat for several workers",
    )
    serve.add_argument(
        "--token",
        default=None,
        help=f"enables promote/abort/rollback for requests that carry it (default: ${TOKEN_ENV}; "
        "without a token the page is read-only)",
    )
    serve.add_argument(
        "--scenario",
        action="append",
        help="scenario of a site (small, large or a YAML; repeat; default: the built-in ones): "
        "the page then knows its day's intervals before they close, and runs their shadow twin",
    )
    serve.add_argument(
        "--shadow-twin-every",
        type=float,
        default=None,
        metavar="SECONDS",
        help="least seconds between two shadow twin comparisons of a site (default 60): each "
        "re-runs the site's day so far for every served and shadow policy, as `shadow report` "
        "does, and /metrics exports the results (chuteflow_shadow_twin_*)",
    )
    add_kafka_options(serve)
    serve.set_defaults(func=run_serve)


def policy_actions(args: argparse.Namespace) -> Actions:
    """The page's actions: ``chuteflow policy ACTION --site S --reason R --json`` with this
    verb's Kafka settings, run in this process; returns (exit code, what it printed)."""
    from chuteflow.cli import policy
    from floor.errors import ChuteflowError

    kafka: list[str] = []
    if args.bootstrap:
        kafka += ["--bootstrap", args.bootstrap]
    if args.kafka_config:
        kafka += ["--kafka-config", args.kafka_config]

    def run(action: str, site: str, reason: str) -> tuple[int, str]:
        parser = argparse.ArgumentParser(prog="chuteflow", exit_on_error=False)
        policy.register(parser.add_subparsers(dest="command"))
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                parsed = parser.parse_args(
                    ["policy", action, "--site", site, "--reason", reason, "--json", *kafka]
                )
                code = int(parsed.func(parsed))
        except ChuteflowError as error:
            return 2, f"chuteflow: {error}"
        except (argparse.ArgumentError, SystemExit) as error:
            return 2, f"chuteflow policy {action}: {error}"
        return code, out.getvalue().strip()

    return run


def run_serve(args: argparse.Namespace) -> int:
    from chuteflow.cli._shared import kafka_client
    from ops.feed import KafkaFeed
    from ops.health import HealthScraper
    from ops.model import OpsModel
    from ops.server import OpsPage, OpsSettings, serve
    from ops.shadow_metrics import EVERY_S, ShadowTwinMetrics
    from ops.twin_days import TwinDays
    from rollout.refs import scenarios_by_site
    from stream.policy_store import ArtifactFetcher

    client = kafka_client(args)  # a bad setting is one line before anything starts
    token = args.token or os.environ.get(TOKEN_ENV) or None
    scenarios = scenarios_by_site(args.scenario)
    shapes = {s: (60.0 * c.interval_minutes, c.n_intervals) for s, c in scenarios.items()}
    model = OpsModel(days=shapes)
    every = EVERY_S if args.shadow_twin_every is None else args.shadow_twin_every
    if every < 0:
        print("chuteflow ops serve: --shadow-twin-every must be >= 0", file=sys.stderr)
        return 2
    twin_days = TwinDays(scenarios)
    model.observers.append(twin_days.observe)
    page = OpsPage(
        model,
        OpsSettings(token=token, actions=policy_actions(args) if token else None),
        feed=KafkaFeed(client, model),
        health=HealthScraper(args.worker_metrics),
        shadow_twin=ShadowTwinMetrics(twin_days, ArtifactFetcher(client), every_s=every),
    )

    def ready(url: str) -> None:
        mode = "promote/abort/rollback need the token" if token else "read-only"
        print(f"ops page on {url} ({mode}); Kafka {client.bootstrap}", flush=True)

    try:
        serve(page, args.host, args.port, ready)
    except OSError as error:
        where = f"{args.host}:{args.port}"
        print(f"chuteflow ops serve: cannot listen on {where}: {error.strerror}", file=sys.stderr)
        return 2
    return 0
