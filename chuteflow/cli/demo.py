"""``chuteflow demo``: the main job, a spike day under static and adaptive policies, then the
live path: embedded Kafka, a worker serving proportional with DRMARL in shadow, the spike day
replayed, a WCS consumer and the shadow report (``chuteflow/live_demo.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from chuteflow.cli._shared import Subparsers, non_negative_int

NAME = "demo"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="the main job: a spike day, static vs adaptive policies")
    parser.add_argument("--out", default="out/demo", help="where tables and plots go")
    parser.add_argument(
        "--seed", type=non_negative_int, default=7, help="seed of the spike day and the twin"
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="only the in-process study (no embedded Kafka, worker or shadow report)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from evaluation.demo import run_demo

    run_demo(Path(args.out), seed=args.seed)
    if not args.offline:
        from chuteflow.live_demo import run_live_demo

        run_live_demo(Path(args.out), seed=args.seed)
    return 0
