"""``chuteflow replay``: publish a day to Kafka and close the loop with the twin through the
worker's allocations."""

from __future__ import annotations

import argparse
import json
import sys

from chuteflow.cli._shared import (
    Subparsers,
    add_day_source,
    add_deprecated,
    add_kafka_options,
    kafka_client,
    load_day,
    positive_float,
    print_json,
    print_result,
)

NAME = "replay"


def speed(text: str) -> float | None:
    """``--speed``: an event-time factor > 0, or ``max`` (lockstep, as fast as allocations)."""
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--speed: a factor > 0 or 'max'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("--speed: a factor > 0 or 'max'")
    return value


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="publish a day to Kafka, closing the loop with the twin")
    add_day_source(parser, day_help="play a historical day file (CSV)")
    parser.add_argument("--site", help="site id to publish as (default: the scenario's)")
    parser.add_argument(
        "--speed", type=speed, default=None, help="event-time factor, or 'max' (lockstep)"
    )
    add_kafka_options(parser)
    parser.add_argument(
        "--timeout-seconds",
        type=positive_float,
        default=60.0,
        help="how long to wait for each allocation",
    )
    add_deprecated(parser, "--timeout", "--timeout-seconds", "timeout_seconds", type=positive_float)
    parser.add_argument("--json", action="store_true", help="the KPIs as one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from replay.loop import day_type_group, replay_day

    client = kafka_client(args)  # unreachable, wrong credentials: one line within seconds
    scenario, groups, demand = load_day(args)
    if args.day is not None:  # a sampled group day fits its group by construction
        from twin.fit import day_fit

        warning = day_fit(scenario, groups, demand.interval_arrivals()).warning(args.day)
        if warning is not None:
            print(warning, file=sys.stderr)
    result = replay_day(
        demand,
        args.seed,
        client,
        day_type_group(groups, demand),
        speed=args.speed,
        allocation_timeout_s=args.timeout_seconds,
    )
    kpis = result.kpis.to_dict()
    if args.json:
        print_json(kpis)
    else:
        print(f"{scenario.site_id}: {demand.label} through Kafka")
        print_result({**kpis, "replay": json.dumps(result.summary(), sort_keys=True)}, False)
    return 0
