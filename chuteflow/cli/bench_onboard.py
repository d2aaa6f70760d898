"""``chuteflow bench onboard --bundle DIR``: where an onboarding's time went, from its
manifest's stage times (``onboarding/timing.py``). The benchmark itself is the onboarding
(``chuteflow site onboard``, which prints the same times in one line when it ends); this
prints the table for any bundle, however long ago it was made."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from chuteflow.cli._shared import Subparsers, print_json


def register_bench_onboard(bench_sub: Subparsers) -> None:
    parser = bench_sub.add_parser(
        "onboard", help="an onboarding's stage times (where its time went), from its bundle"
    )
    parser.add_argument(
        "--bundle",
        action="append",
        required=True,
        metavar="DIR",
        help="a bundle of `site onboard` (repeat for a fleet's)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.set_defaults(func=run_bench_onboard)


def run_bench_onboard(args: argparse.Namespace) -> int:
    from floor.errors import ChuteflowError
    from onboarding.timing import format_timing, stage_timing

    timings = []
    for bundle in args.bundle:
        path = Path(bundle) / "manifest.json"
        try:
            manifest = json.loads(path.read_text())
            timings.append(stage_timing(manifest))
        except OSError:
            raise ChuteflowError(f"{bundle}: no manifest.json: not a finished bundle") from None
        except (ValueError, KeyError, TypeError) as error:
            raise ChuteflowError(f"{path}: not an onboarding manifest ({error})") from None
    if args.json:
        print_json({"bundles": timings})
    else:
        print("\n".join(format_timing(t) for t in timings))
    return 0


__all__ = ["register_bench_onboard", "run_bench_onboard"]
