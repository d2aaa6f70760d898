"""``chuteflow kafka up|down|status|topics``: the local Apache Kafka broker (no Docker)."""

from __future__ import annotations

import argparse
import sys
import time

from chuteflow.cli._shared import (
    Subparsers,
    add_deprecated,
    add_kafka_options,
    kafka_client,
    port,
    print_json,
)
from localkafka import DEFAULT_PORT

NAME = "kafka"


def _state_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        default=None,
        help="broker state directory (default: <CHUTEFLOW_KAFKA_HOME>/state)",
    )


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="a local Apache Kafka broker (no Docker needed)")
    kafka_sub = parser.add_subparsers(dest="kafka_command", required=True)

    up = kafka_sub.add_parser("up", help="start the broker (fetches jars with mvn once)")
    up.add_argument("--port", type=port, default=DEFAULT_PORT, help="PLAINTEXT port (0: any)")
    up.add_argument(
        "--timeout-seconds",
        dest="timeout",
        type=float,
        default=60.0,
        help="how long to wait for the broker to be ready",
    )
    add_deprecated(up, "--timeout", "--timeout-seconds", "timeout", type=float)
    up.add_argument(
        "--sasl-ssl",
        action="store_true",
        help="also a SASL_SSL listener (SCRAM-SHA-512 over TLS, throw-away CA); prints the "
        "client properties file for --kafka-config as a second line",
    )
    up.add_argument(
        "--sasl-ssl-port",
        type=port,
        default=None,
        help="SASL_SSL port (default: --port + 1, any free one with --port 0; 0: any)",
    )
    _state_option(up)
    up.set_defaults(func=run_up)

    down = kafka_sub.add_parser("down", help="stop the broker (SIGTERM, then SIGKILL)")
    _state_option(down)
    down.set_defaults(func=run_down)

    status = kafka_sub.add_parser("status", help="JSON status; exit code 1 when not running")
    _state_option(status)
    status.set_defaults(func=run_status)

    topics = kafka_sub.add_parser(
        "topics",
        help="create every topic chuteflow and its workers use, the workers' table changelog "
        "included (idempotent; workers then need no create permission)",
    )
    add_kafka_options(topics)
    topics.add_argument("--replication", type=int, default=1)
    topics.add_argument(
        "--app-id",
        action="append",
        default=None,
        help="worker group (chuteflow worker --app-id) whose table changelog to create; "
        "repeat for several groups (default: chuteflow-worker)",
    )
    topics.set_defaults(func=run_topics)


def run_up(args: argparse.Namespace) -> int:
    from localkafka import broker_status, broker_up

    started = time.monotonic()
    bootstrap = broker_up(
        args.port,
        state_dir=args.state_dir,
        timeout=args.timeout,
        sasl_ssl=args.sasl_ssl,
        sasl_ssl_port=args.sasl_ssl_port,
    )
    print(bootstrap)
    running_port = bootstrap.rpartition(":")[2]
    if args.port != 0 and running_port != str(args.port):
        # one state directory, one broker: it was running already, on another port
        print(
            f"chuteflow: note: the broker of this state directory already runs on "
            f"{bootstrap}, not --port {args.port} (kafka down first to move it)",
            file=sys.stderr,
        )
    if args.sasl_ssl:
        status = broker_status(state_dir=args.state_dir)
        print(status["client_config"])
        print(
            f"SASL_SSL on {status['sasl_ssl_bootstrap']} (SCRAM-SHA-512): pass "
            f"--kafka-config {status['client_config']} to chuteflow",
            file=sys.stderr,
        )
    print(f"ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


def run_down(args: argparse.Namespace) -> int:
    from localkafka import broker_down

    stopped = broker_down(state_dir=args.state_dir)
    print("stopped" if stopped else "not running")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from localkafka import broker_status

    status = broker_status(state_dir=args.state_dir)
    print_json(status)
    return 0 if status["running"] else 1


def run_topics(args: argparse.Namespace) -> int:
    from contracts.topics import ALL_TOPICS
    from stream.admin import ensure_topics
    from stream.app import DEFAULT_APP_ID, changelog_topic

    client = kafka_client(args)
    groups = args.app_id or [DEFAULT_APP_ID]
    specs = (*ALL_TOPICS, *(changelog_topic(group) for group in dict.fromkeys(groups)))
    for name, outcome in ensure_topics(client, specs, replication=args.replication).items():
        print(f"{name}\t{outcome}")
    return 0
