"""``chuteflow site``: bring your own site. ``site check`` reads a site file and its history and
reports coverage before anything runs; ``site synth`` makes a synthetic site to try it on;
``site add|list|remove`` keep the site catalog (``chuteflow.sites.v1``) that ``chuteflow
worker --catalog`` serves, so a site joins or leaves a running fleet without a restart.

Each subcommand is a ``(register, run)`` pair in :data:`SUBCOMMANDS`; a new one (``onboard``)
is one more entry. The work is in ``floor/site_file.py`` (the site file), ``twin/coverage.py``
and ``twin/split.py`` (history coverage and the time split) and ``twin/synth_site.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from chuteflow.cli._shared import (
    Subparsers,
    add_kafka_options,
    kafka_client,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    print_json,
)
from chuteflow.cli.onboard import register_onboard

if TYPE_CHECKING:
    from contracts.control import PolicyRef
    from contracts.sites import SiteCatalogEntry
    from floor.scenario import Scenario
    from floor.site import Site
    from stream.clients import KafkaClientConfig

NAME = "site"


# --- site check -----------------------------------------------------------------------------


def register_check(sub: Subparsers) -> None:
    from twin.split import DEFAULT_HELDOUT_WEEKS, DEFAULT_VALIDATION_WEEKS

    check = sub.add_parser(
        "check",
        help="validate a site file and report its history's coverage (exit 2 if unusable)",
    )
    check.add_argument("--site", required=True, help="site file (YAML; docs/site-format.md)")
    check.add_argument(
        "--history", required=True, help="folder of day files (.csv, .csv.gz, .parquet)"
    )
    check.add_argument(
        "--heldout-weeks",
        type=positive_int,
        default=DEFAULT_HELDOUT_WEEKS,
        help="last weeks kept for the final evaluation",
    )
    check.add_argument(
        "--validation-weeks",
        type=positive_int,
        default=DEFAULT_VALIDATION_WEEKS,
        help="weeks before them for selecting candidates",
    )
    check.add_argument("--json", action="store_true", help="one JSON object on stdout")
    check.set_defaults(func=run_check)


def _describe_site(path: str) -> str:
    from floor.site_file import load_site_file

    site = load_site_file(path)
    s, rails = site.scenario, site.guardrails
    return (
        f"{path}: site {s.name} ({s.site_id}): {s.n_destinations} destinations, "
        f"{s.eject_chutes} eject chutes, {s.day_hours:g} h shift from "
        f"{s.day_start:%H:%M} UTC in {s.interval_minutes:g}-min intervals "
        f"({s.n_intervals} decisions), guardrails {rails.version}"
    )


def run_check(args: argparse.Namespace) -> int:
    """Print the site and the history's coverage; problems one line each on stderr."""
    from floor.site_file import load_site_file
    from twin.coverage import check_history

    site = load_site_file(args.site)
    coverage = check_history(site.scenario, args.history, args.heldout_weeks, args.validation_weeks)
    report = coverage.to_dict()
    if args.json:
        print_json({"site": args.site, **report})
    else:
        print(_describe_site(args.site))
        print(
            f"{args.history}: {report['days']} days {report['first']}..{report['last']} "
            f"in {report['files']} files, {report['rows']:,} rows, "
            f"mean {report['mean_daily_volume']:,.0f} packages/day"
        )
        closed = report["closed_weekdays"]
        print(f"  closed weekdays: {', '.join(closed) if closed else 'none'}")  # type: ignore[arg-type]
        split = coverage.split.to_dict()
        parts = []
        for key, label in (("fit", "fit"), ("validation", "validation"), ("heldout", "held-out")):
            window = split[key]
            assert isinstance(window, dict)
            span = f" {window['first']}..{window['last']}" if window["days"] else ""
            parts.append(f"{label} {window['days']} days{span}")
        print(f"  split: {'; '.join(parts)}")
    for warning in coverage.warnings():
        print(f"chuteflow: warning: {warning}", file=sys.stderr)
    problems = coverage.problems()
    for problem in problems:
        print(f"chuteflow: {args.history}: {problem}", file=sys.stderr)
    if not args.json:
        print("usable" if not problems else f"not usable: {len(problems)} problems")
    return 0 if not problems else 2


# --- site synth -----------------------------------------------------------------------------


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def register_synth(sub: Subparsers) -> None:
    from twin.history_files import HISTORY_FORMATS

    synth = sub.add_parser(
        "synth", help="write a synthetic site file and its multi-year history (deterministic)"
    )
    synth.add_argument("--out", required=True, help="folder: site.yaml, history/, synth.json")
    synth.add_argument("--destinations", type=positive_int, required=True, help="destinations")
    synth.add_argument(
        "--chutes", type=positive_int, required=True, help="eject chutes (may be < destinations)"
    )
    synth.add_argument("--shift-hours", type=positive_float, required=True, help="shift length")
    synth.add_argument(
        "--interval-minutes", type=positive_float, required=True, help="decision interval"
    )
    synth.add_argument(
        "--daily-volume", type=positive_float, required=True, help="typical day's packages"
    )
    synth.add_argument(
        "--seasonality",
        type=non_negative_float,
        default=1.0,
        help="scale of yearly and weekly swings (0 flat, 1 as the built-in sites)",
    )
    synth.add_argument("--years", type=positive_float, default=2.0, help="history length")
    synth.add_argument("--seed", type=non_negative_int, default=0, help="site and history seed")
    synth.add_argument(
        "--start", type=_iso_date, default=date(2023, 1, 2), help="first day, YYYY-MM-DD"
    )
    synth.add_argument("--format", choices=HISTORY_FORMATS, default="csv", help="day files")
    synth.add_argument("--name", help="site name and id (default: synth-<D>d-<C>c-s<seed>)")
    synth.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from chuteflow.progress import Progress
    from twin.synth_site import SynthParams, synth_scenario, synth_site

    params = SynthParams(
        destinations=args.destinations,
        chutes=args.chutes,
        shift_hours=args.shift_hours,
        interval_minutes=args.interval_minutes,
        daily_volume=args.daily_volume,
        seasonality=args.seasonality,
        years=args.years,
        seed=args.seed,
        start=args.start,
        file_format=args.format,
        name=args.name,
    )
    synth_scenario(params)  # refuse bad parameters before the progress bar appears
    progress = Progress(params.n_days, f"synth {params.site_name}")
    result = synth_site(params, Path(args.out), on_day=progress.update)
    progress.close()
    print(
        f"wrote {result.site_file} and {result.n_days} day files ({result.rows:,} packages) "
        f"to {result.history} in {result.seconds:.1f} s"
    )
    return 0


# --- site add | list | remove (the site catalog) ------------------------------------------


def register_add(sub: Subparsers) -> None:
    add = sub.add_parser(
        "add",
        help="add a site (or a new revision of it) to the site catalog served by "
        "`chuteflow worker --catalog`; the site is checked strictly first (exit 2 if unusable)",
    )
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--site", metavar="FILE", help="site file (YAML; docs/site-format.md), small or large"
    )
    source.add_argument(
        "--bundle",
        metavar="DIR",
        help="an onboarding bundle (chuteflow site onboard): its site.yaml, groups and "
        "recommended policy (registered in the policy store when it is a learned one)",
    )
    add.add_argument(
        "--groups",
        metavar="FILE",
        help="day-type groups .npz of the site (chuteflow days fit-groups; default: "
        "groups-<name>.npz beside the site file, else the shipped groups of its name)",
    )
    add.add_argument(
        "--policy",
        default=None,
        help="what serves the site until a route says otherwise: static, proportional or a "
        "store version NAME@VERSION, NAME@latest, NAME@ALIAS, sha256:HEX (default: the "
        "bundle's recommended policy, else proportional)",
    )
    add.add_argument(
        "--site-id",
        default=None,
        help="serve the site under this id instead of the file's site_id (copies of one "
        "layout in a fleet)",
    )
    add.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_kafka_options(add)
    add.set_defaults(func=run_add)


def _site_text(path: str, site_id: str | None) -> tuple[str, Site]:
    """The site file's text as a catalog entry carries it (the file as it is when it has its
    own guardrails section, else rendered with the guardrails it was loaded with) and the
    site, checked strictly."""
    from floor.errors import ChuteflowError
    from floor.site_file import SITE_ID, load_site_file, load_site_text, site_file_text
    from floor.site_guardrails import SiteGuardrails

    site = load_site_file(path)
    scenario = site.scenario
    if site_id is not None:
        if not SITE_ID.match(site_id):
            raise ChuteflowError(
                f"--site-id {site_id!r}: must be 1-128 letters, digits, '.', '_' or '-'"
            )
        scenario = scenario.model_copy(update={"site_id": site_id})
    if scenario.guardrails is not None and site_id is None and Path(path).is_file():
        text = Path(path).read_text()
    else:
        section = SiteGuardrails.from_set(site.guardrails)
        scenario = scenario.model_copy(update={"guardrails": section})
        text = site_file_text(scenario, header=f"{scenario.name}: added by chuteflow site add")
    folder = Path(path).parent if Path(path).is_file() else None
    return text, load_site_text(text, path, source_dir=folder)


def _groups(scenario: Scenario, path: Path | None) -> bytes | None:
    """The groups bytes an entry carries (checked against the site), or None when the
    worker has them already (the shipped ones of the site's name). Without ``path``: the
    ``groups-<name>.npz`` beside the site's file (an onboarding bundle's), else the shipped
    ones (``floor.daytypes.site_groups_path``)."""
    from floor.daytypes import DayTypeGroups, GroupsError, default_groups_path, site_groups_path

    if path is None:
        found = site_groups_path(scenario)
        if found == default_groups_path(scenario.name):
            if not found.is_file():
                raise GroupsError(
                    f"site {scenario.name}: no day-type groups: give --groups FILE (chuteflow "
                    "days fit-groups) or --bundle DIR (chuteflow site onboard)"
                )
            DayTypeGroups.load(found).check_fits(scenario)
            return None
        path = found
    try:
        data = path.read_bytes()
    except OSError as error:
        raise GroupsError(f"{path}: cannot read it ({error.strerror})") from None
    DayTypeGroups.from_bytes(data, str(path)).check_fits(scenario)
    return data


def _policy_ref(text: str, client: KafkaClientConfig) -> PolicyRef:
    """``--policy`` as a catalog entry names it: a built-in, or a store version by hash."""
    from contracts.control import BUILTIN_SERVABLE, PolicyRef
    from floor.errors import ChuteflowError
    from rollout.refs import is_store_name, store_record

    if text in BUILTIN_SERVABLE:
        return PolicyRef(name=text)
    if is_store_name(text):
        record = store_record(client, text)
        return PolicyRef(name=record.name, sha256=record.sha256)
    raise ChuteflowError(
        f"--policy {text}: a catalog entry names a built-in ({', '.join(BUILTIN_SERVABLE)}) or "
        "a store version (workers fetch it by hash): register the file first with chuteflow "
        "policy register"
    )


def _bundle_policy(
    bundle: Path, manifest: dict[str, object], client: KafkaClientConfig
) -> PolicyRef:
    """The bundle's recommended policy as a reference, registered in the policy store as
    ``chuteflow site onboard --register`` does (``<site>-onboarded``) when it is learned."""
    from contracts.control import PolicyRef
    from decision.artifacts import inspect_artifact
    from stream.policy_store import read_report, read_settings, register_policy

    recommended = str(manifest.get("recommended_policy", "proportional"))
    if recommended in ("proportional", "static"):
        return PolicyRef(name=recommended)
    path = bundle / recommended
    data = path.read_bytes()
    check = inspect_artifact(data, [str(bundle / "site.yaml")], label=str(path))
    settings_file = bundle / "policy" / "settings.json"
    report_file = bundle / "report.md"
    record, _ = register_policy(
        client,
        f"{manifest['site']}-onboarded",
        check,
        data,
        settings=read_settings(settings_file) if settings_file.is_file() else None,
        report=read_report(report_file) if report_file.is_file() else None,
    )
    return PolicyRef(name=record.name, sha256=record.sha256)


def run_add(args: argparse.Namespace) -> int:
    """Check the site (file, groups, policy: as a worker will build it), then publish it."""
    import json

    from contracts.control import PolicyRef
    from contracts.sites import CatalogError, make_entry
    from contracts.topics import SITES
    from floor.errors import ChuteflowError
    from stream.policy_store import ArtifactFetcher
    from stream.site_catalog import add_site
    from stream.topic_reader import site_partition
    from stream.worker import build_site

    manifest: dict[str, object] = {}
    bundle = Path(args.bundle) if args.bundle else None
    if bundle is not None:
        if args.groups:
            raise ChuteflowError("--groups: give it with --site; a bundle has its own groups")
        try:
            manifest = json.loads((bundle / "manifest.json").read_text())
        except (OSError, ValueError) as error:
            raise ChuteflowError(
                f"--bundle {bundle}: no readable manifest.json ({error})"
            ) from None
        path = str(bundle / "site.yaml")
    else:
        path = args.site
    text, site = _site_text(path, args.site_id)
    scenario = site.scenario
    groups = _groups(scenario, Path(args.groups) if args.groups else None)
    client = kafka_client(args)
    if args.policy is not None:
        ref = _policy_ref(args.policy, client)
    elif bundle is not None:
        ref = _bundle_policy(bundle, manifest, client)
    else:
        ref = PolicyRef(name="proportional")
    # What every worker will do with the entry, here first: a site it cannot serve is one
    # line and exit 2, not a refused record in each worker's log.
    try:
        probe = make_entry(
            scenario.site_id,
            text,
            revision=1,
            added_at=datetime.now(UTC),
            groups=groups,
            policy=ref,
        )
    except CatalogError as error:
        raise ChuteflowError(error.reason) from None
    build_site(probe, fetch=ArtifactFetcher(client))
    entry = add_site(client, scenario.site_id, text, groups=groups, policy=ref)
    partition = site_partition(entry.site_id)
    summary = {
        "site_id": entry.site_id,
        "revision": entry.revision,
        "name": scenario.name,
        "policy": ref.label,
        "groups": "entry" if groups is not None else "shipped",
        "partition": partition,
        "topic": SITES.name,
    }
    if args.json:
        print_json(summary)
    else:
        served = "from its next day" if entry.revision > 1 else "from its first day"
        print(
            f"site {entry.site_id} revision {entry.revision} added to {SITES.name} "
            f"({scenario.name}, policy {ref.label}, groups {summary['groups']}, partition "
            f"{partition}): workers started with --catalog serve it {served}"
        )
    return 0


def register_list(sub: Subparsers) -> None:
    listing = sub.add_parser("list", help="the sites of the site catalog")
    listing.add_argument("--json", action="store_true", help="one JSON list on stdout")
    add_kafka_options(listing)
    listing.set_defaults(func=run_list)


def _describe_entry(entry: SiteCatalogEntry) -> dict[str, object]:
    import yaml

    from stream.topic_reader import site_partition

    try:
        raw = yaml.safe_load(entry.site_yaml)
    except yaml.YAMLError:
        raw = None
    fields = raw if isinstance(raw, dict) else {}
    return {
        "site_id": entry.site_id,
        "revision": entry.revision,
        "name": fields.get("name"),
        "eject_chutes": fields.get("eject_chutes"),
        "destinations": len(fields.get("destinations") or ()),
        "policy": entry.policy.label,
        "groups": "entry" if entry.groups_npz_base64 is not None else "shipped",
        "partition": site_partition(entry.site_id),
        "added_at": entry.added_at.isoformat(),
        "added_by": entry.added_by,
    }


def run_list(args: argparse.Namespace) -> int:
    from stream.site_catalog import read_catalog

    read = read_catalog(kafka_client(args))
    rows = [_describe_entry(entry) for _, entry in sorted(read.entries.items())]
    for key, reason in read.refused:
        print(f"chuteflow: warning: catalog record of {key} refused: {reason}", file=sys.stderr)
    if args.json:
        print_json(rows)
        return 0
    columns = ("site_id", "revision", "name", "policy", "groups", "partition", "added_at")
    table = [tuple(c.upper() for c in columns)] + [
        tuple(str(row[c]) for c in columns) for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
    return 0


def register_remove(sub: Subparsers) -> None:
    remove = sub.add_parser(
        "remove", help="remove a site from the site catalog: workers drop it and its state"
    )
    remove.add_argument("site_id", metavar="SITE_ID", help="the site's id (chuteflow site list)")
    add_kafka_options(remove)
    remove.set_defaults(func=run_remove)


def run_remove(args: argparse.Namespace) -> int:
    from contracts.topics import SITES
    from floor.errors import ChuteflowError
    from stream.site_catalog import read_catalog, remove_site

    client = kafka_client(args)
    if args.site_id not in read_catalog(client).entries:
        raise ChuteflowError(f"site {args.site_id} is not in the site catalog ({SITES.name})")
    remove_site(client, args.site_id)
    print(f"site {args.site_id} removed from {SITES.name}: workers drop it and its state")
    return 0


SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    register_check,
    register_synth,
    register_onboard,
    register_add,
    register_list,
    register_remove,
)
"""Every ``site`` subcommand's register function (``onboard`` joins here), in help order."""


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(
        NAME,
        help="bring your own site: check a site and history, synth one, onboard it, add it to "
        "the site catalog a fleet serves",
    )
    site_sub = parser.add_subparsers(dest="site_command", required=True)
    for register_sub in SUBCOMMANDS:
        register_sub(site_sub)
