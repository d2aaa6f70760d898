"""``chuteflow site onboard``: a site file and its history to a gated policy bundle
(``onboarding/pipeline.py``), fanned out on Ray; ``--register`` puts the bundle's policy in
the store and in shadow on the site, so the next command is ``chuteflow shadow report``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chuteflow.cli._shared import Subparsers, add_kafka_options, positive_float, positive_int
from floor.errors import ChuteflowError

if TYPE_CHECKING:
    from onboarding.fleet import FleetSite


def register_onboard(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "onboard",
        help="split the history, fit groups, train and pick a policy, evaluate it on held-out "
        "days and write a gated bundle (resumable)",
    )
    parser.add_argument(
        "--site",
        action="append",
        default=[],
        metavar="SITE.yaml",
        help="the site file (repeat --site/--history/--out for several sites in one run)",
    )
    parser.add_argument(
        "--history", action="append", default=[], metavar="DIR", help="folder of day files"
    )
    parser.add_argument(
        "--out", action="append", default=[], metavar="BUNDLE", help="the bundle folder"
    )
    parser.add_argument(
        "--fleet",
        default=None,
        metavar="FLEET.yaml",
        help="several sites in one run: `sites:` entries of site, history, out "
        "(onboarding/fleet.py; docs/site-format.md)",
    )
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
    parser.add_argument(
        "--recipes",
        default=None,
        metavar="A,B,...",
        help="candidate recipes (default marl,drmarl-mixture,drmarl-rule; also "
        "drmarl-lookahead, drmarl-mixture-shipped, drmarl-rule-shipped: onboarding/plan.py)",
    )
    parser.add_argument(
        "--snapshots",
        type=positive_int,
        default=None,
        help="each DRMARL candidate: the value ensemble of its run's K best checkpoints "
        "(default 1: the best alone)",
    )
    parser.add_argument(
        "--lr-final",
        type=float,
        default=None,
        metavar="SHARE",
        help="DRMARL candidates: learning rate at the last episode as a share of the "
        "recipe's, decayed linearly (default 1: constant)",
    )
    parser.add_argument(
        "--ensemble-size",
        type=positive_int,
        default=None,
        help="most members of the value ensemble (default 3; --quick 2)",
    )
    parser.add_argument(
        "--heldout-weeks",
        type=positive_int,
        default=None,
        help="last weeks judged on only (default 4; --quick 1), as `site check`",
    )
    parser.add_argument(
        "--validation-weeks",
        type=positive_int,
        default=None,
        help="weeks before them that candidates are picked on (default 4; --quick 1)",
    )
    parser.add_argument(
        "--groups-criterion",
        choices=("silhouette", "gap"),
        default=None,
        help="how the day-type group count is chosen: best mean silhouette (default) or the "
        "gap statistic with groups of at least a week (onboarding/groups.py)",
    )
    parser.add_argument(
        "--groups",
        default=None,
        metavar="GROUPS.npz",
        help="use these day-type groups instead of fitting them (one site; fitted on days "
        "before the validation weeks; a fleet entry's `groups:` does it per site)",
    )
    parser.add_argument(
        "--allow-gaps",
        action="store_true",
        help="accept dates missing on operating weekdays (known closures; refused by default)",
    )
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
        "heldout_weeks": args.heldout_weeks,
        "validation_weeks": args.validation_weeks,
        "allow_gaps": args.allow_gaps or None,
        "groups_criterion": args.groups_criterion,
        "recipes": tuple(r.strip() for r in args.recipes.split(",")) if args.recipes else None,
        "ensemble_size": args.ensemble_size,
        "snapshots": args.snapshots,
        "lr_final": args.lr_final,
    }
    explicit = {k: v for k, v in given.items() if v is not None}
    return OnboardOptions.quick_run(**explicit) if args.quick else OnboardOptions(**explicit)


def _sites(args: argparse.Namespace) -> list[FleetSite]:
    """The run's sites: the fleet file's, or the --site/--history/--out triples."""
    from onboarding.fleet import FleetSite, read_fleet
    from onboarding.pipeline import OnboardError

    given = (args.site, args.history, args.out)
    if args.fleet is not None:
        if any(given) or args.groups is not None:
            raise OnboardError(
                "--fleet lists the sites: leave out --site, --history, --out and --groups "
                "(a fleet entry's `groups:` supplies a site's groups)"
            )
        return list(read_fleet(Path(args.fleet)))
    if not args.site:
        raise OnboardError("give --site, --history and --out (or --fleet FLEET.yaml)")
    if not len(args.site) == len(args.history) == len(args.out):
        raise OnboardError(
            f"--site, --history and --out go in triples: got {len(args.site)} --site, "
            f"{len(args.history)} --history, {len(args.out)} --out"
        )
    if args.groups is not None and len(args.site) > 1:
        raise OnboardError("--groups supplies one site's groups: leave it out for several sites")
    groups = Path(args.groups) if args.groups is not None else None
    return [FleetSite(Path(s), Path(h), Path(o), groups) for s, h, o in zip(*given, strict=True)]


def run_onboard(args: argparse.Namespace) -> int:
    import contextlib
    import threading

    from chuteflow.progress import Progress
    from evaluation.fanout import open_fanout
    from onboarding.fleet import check_fleet, onboard_fleet
    from onboarding.pipeline import OnboardError, bundle_lock
    from onboarding.plan import OnboardOptions
    from twin.coverage import unread_warning

    options = _options(args)
    assert isinstance(options, OnboardOptions)
    sites = _sites(args)
    if args.name is not None and len(sites) > 1:
        raise OnboardError("--name names one site's policy: leave it out for several sites")
    bars: dict[str, Progress] = {}
    lock = threading.Lock()  # a fleet's sites report from their own threads

    def progress(stage: str, done: int, total: int) -> None:
        with lock:
            if stage not in bars:
                bars[stage] = Progress(total, stage)
            bars[stage].update(done)
            if done == total:
                bars.pop(stage).close()

    def log(line: str) -> None:
        with lock:
            print(line, file=sys.stderr)

    checked = check_fleet(sites, options)  # every site, before a file is written or Ray starts
    for site, inputs in zip(sites, checked, strict=True):  # a day exported under another name
        unread = unread_warning(list(inputs.unread))  # is not silently left out
        if unread:
            print(f"chuteflow: warning: {site.history}: {unread}", file=sys.stderr)
    if args.register:  # no broker, or one without the route topic: one line now, not after
        from chuteflow.cli._shared import CONNECT_TIMEOUT_S, kafka_client
        from contracts.topics import CONTROL
        from stream.admin import require_topics

        client = kafka_client(args, check=False)  # require_topics connects, with its errors
        require_topics(client, [CONTROL.name], timeout=CONNECT_TIMEOUT_S)
    with contextlib.ExitStack() as locks:
        for site in sites:  # a second run on a bundle being written: one line, before Ray
            locks.enter_context(bundle_lock(site.out))
        with open_fanout(args.ray, args.workers) as fanout:
            print(f"fan-out: {fanout.name}", file=sys.stderr)
            outcomes = onboard_fleet(sites, checked, options, fanout, log, progress)
    code = 0
    for outcome in outcomes:
        if outcome.result is None:
            print(f"chuteflow: {outcome.site.site}: {outcome.error}", file=sys.stderr)
            print(f"  resume: rerun the same command ({outcome.site.out}.partial is kept)")
            code = 1
            continue
        result, manifest = outcome.result, outcome.result.manifest
        gate = manifest["gate"]
        print(f"bundle: {result.bundle}")
        verdict = "passed" if gate["passed"] else "refused"
        print(f"recommended: {manifest['recommended_policy']} (gate {verdict})")
        for line in gate["shortfalls"]:
            print(f"  {line}")
        print(f"stage times: {stage_times(manifest)}")
        if result.skipped:
            print(f"resumed: skipped {', '.join(result.skipped)}")
        if args.register:
            try:
                registered = _register(args, result.bundle, manifest)
            except ChuteflowError as error:  # the broker went away during the run
                print(f"chuteflow: {outcome.site.site}: {error}", file=sys.stderr)
                registered = 2
            if registered:
                print(f"  not registered: {result.bundle} is complete; rerun the same command")
            code = code or registered
    return code


def stage_times(manifest: dict[str, Any]) -> str:
    """``split 0s, groups 1s, ...``: where an onboarding's time went (``bench onboard``)."""
    from onboarding.timing import stage_timing

    rows = stage_timing(manifest)["stages"]
    return ", ".join(f"{row['stage']} {row['seconds']:.0f}s" for row in rows)


def _register(args: argparse.Namespace, bundle: Path, manifest: dict[str, object]) -> int:
    """Register the bundle's policy (``policy register``) and shadow it on the site
    (``policy route`` for a site without a route yet: proportional serves; else ``policy
    shadow`` with the site's other shadows kept and an earlier version of this name
    replaced), reusing those commands' own code paths."""
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
    from contracts.control import PolicyRef
    from decision.artifacts import sha256_hex

    digest = sha256_hex((bundle / str(selection["policy"])).read_bytes())
    ref = PolicyRef(name=name, sha256=digest)
    site_id = str(manifest["site_id"])
    common = {
        "json": False,
        "no_wait": True,
        "bootstrap": args.bootstrap,
        "kafka_config": args.kafka_config,
    }
    now = read_routes(kafka_client(args)).get(site_id)
    if now is not None and now.serving.key == ref.key:
        print(f"{site_id}: {now.serving.label} serves the site already; its route is unchanged")
        code = 0
    elif now is None:
        route = argparse.Namespace(
            site=[site_id],
            serve="proportional",
            shadow=[f"{name}@{digest}"],
            fallback=None,
            deadline_ms=None,
            reason="site onboard",
            **common,
        )
        code = routes.run_route(route)
    else:
        # beside the site's other shadows (refs already, not looked up again), in place of an
        # earlier onboarding's version; an open canary stays open
        shadows = [*(r for r in now.shadows if r.name != name), ref]
        shadowed = routes._shadowed(now, shadows, "site onboard", quiet=False)
        code = routes._publish(argparse.Namespace(**common), [shadowed])
    if code == 0:
        # the site's layout with it: a site that is not built in is unknown to shadow report
        print(f"next: chuteflow shadow report --site {site_id} --scenario {site_file}")
    return code


__all__ = ["register_onboard", "run_onboard", "stage_times"]
