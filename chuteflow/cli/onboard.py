"""``chuteflow site onboard``: a site file and its history to a gated policy bundle
(``onboarding/pipeline.py``), fanned out on Ray; ``--register`` puts the bundle's policy in
the store and in shadow on the site, so the next command is ``chuteflow shadow report``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chuteflow.cli._shared import Subparsers, add_kafka_options, positive_float, positive_int


def register_onboard(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "onboard",
        help="split the history, fit groups, train and pick a policy, evaluate it on held-out "
        "days and write a gated bundle (resumable)",
    )
    parser.add_argument("--site", required=True, metavar="SITE.yaml", help="the site file")
    parser.add_argument("--history", required=True, metavar="DIR", help="folder of day files")
    parser.add_argument("--out", required=True, metavar="BUNDLE", help="the bundle folder")
    parser.add_argument(
        "--minutes", type=positive_float, default=None, help="time budget (default 30)"
    )
    parser.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="an existing Ray cluster (default: a local Ray started here)",
    )
    parser.add_argument(
        "--workers", type=positive_int, default=None, help="local Ray CPUs (default 2; 1: serial)"
    )
    parser.add_argument("--quick", action="store_true", help="CI-sized run (seconds)")
    parser.add_argument("--seeds", type=positive_int, default=None, help="seeds per recipe")
    parser.add_argument("--episodes", type=positive_int, default=None, help="per member")
    parser.add_argument("--heldout-days", type=positive_int, default=None)
    parser.add_argument("--validation-days", type=positive_int, default=None)
    parser.add_argument(
        "--register", action="store_true", help="register the policy and shadow it on the site"
    )
    parser.add_argument("--name", default=None, help="--register: policy name (default: site)")
    add_kafka_options(parser)
    parser.set_defaults(func=run_onboard)


def _options(args: argparse.Namespace) -> object:
    from onboarding.plan import OnboardOptions

    given = {
        "minutes": args.minutes,
        "seeds": args.seeds,
        "episodes": args.episodes,
        "heldout_days": args.heldout_days,
        "validation_days": args.validation_days,
    }
    explicit = {k: v for k, v in given.items() if v is not None}
    return OnboardOptions.quick_run(**explicit) if args.quick else OnboardOptions(**explicit)


def run_onboard(args: argparse.Namespace) -> int:
    from chuteflow.progress import Progress
    from evaluation.fanout import open_fanout
    from onboarding.pipeline import check_inputs, onboard
    from onboarding.plan import OnboardOptions

    options = _options(args)
    assert isinstance(options, OnboardOptions)
    bars: dict[str, Progress] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = Progress(total, stage)
        bars[stage].update(done)
        if done == total:
            bars.pop(stage).close()

    out = Path(args.out)
    inputs = check_inputs(Path(args.site), Path(args.history), out, options)
    with open_fanout(args.ray, args.workers) as fanout:
        print(f"fan-out: {fanout.name}", file=sys.stderr)
        result = onboard(inputs, out, options, fanout, progress=progress)
    manifest = result.manifest
    gate = manifest["gate"]
    print(f"bundle: {result.bundle}")
    verdict = "passed" if gate["passed"] else "refused"
    print(f"recommended: {manifest['recommended_policy']} (gate {verdict})")
    for line in gate["shortfalls"]:
        print(f"  {line}")
    times = ", ".join(f"{k} {v:.0f}s" for k, v in manifest["stage_seconds"].items())
    print(f"stage times: {times}")
    if result.skipped:
        print(f"resumed: skipped {', '.join(result.skipped)}")
    if args.register:
        return _register(args, result.bundle, manifest)
    return 0


def _register(args: argparse.Namespace, bundle: Path, manifest: dict[str, object]) -> int:
    """Register the bundle's policy (``policy register``) and shadow it on the site
    (``policy route`` for a site without a route yet: proportional serves; else ``policy
    shadow``), reusing those commands' own code paths."""
    from chuteflow.cli import policy, routes
    from chuteflow.cli._shared import kafka_client
    from stream.routing import read_routes

    selection = manifest["selection"]
    assert isinstance(selection, dict)
    name = args.name or f"{manifest['site']}-onboarded"
    site_file = str(bundle / "site.yaml")
    reg = argparse.Namespace(
        path=str(bundle / str(selection["policy"])),
        name=name,
        scenario=[site_file],
        settings=str(bundle / "policy" / "settings.json"),
        report=str(bundle / "report.md"),
        json=False,
        bootstrap=args.bootstrap,
        kafka_config=args.kafka_config,
    )
    code = policy.run_register(reg)
    if code != 0:
        return code
    from decision.artifacts import sha256_hex

    ref = f"{name}@{sha256_hex((bundle / str(selection['policy'])).read_bytes())}"
    site_id = str(manifest["site_id"])
    common = {
        "json": False,
        "no_wait": True,
        "bootstrap": args.bootstrap,
        "kafka_config": args.kafka_config,
    }
    if site_id not in read_routes(kafka_client(args)):
        route = argparse.Namespace(
            site=[site_id],
            serve="proportional",
            shadow=[ref],
            fallback=None,
            deadline_ms=None,
            reason="site onboard",
            **common,
        )
        code = routes.run_route(route)
    else:
        code = routes.run_shadow(
            argparse.Namespace(site=[site_id], policies=[ref], reason="site onboard", **common)
        )
    if code == 0:
        print(f"next: chuteflow shadow report --site {site_id}")
    return code


__all__ = ["register_onboard", "run_onboard"]
