"""``chuteflow policy register|list|show``: the policy store (``stream/policy_store.py``).

A registered policy's version is the sha256 of its ONNX bytes; a worker serves one with
``chuteflow worker --policy NAME@VERSION`` (a unique prefix of at least 8 hex digits will do)
or ``--policy sha256:HEX``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chuteflow.cli._shared import Subparsers, add_kafka_options, kafka_client, print_json
from chuteflow.cli.canary import add_canary_commands
from chuteflow.cli.policy_names import add_alias_commands, add_show
from chuteflow.cli.routes import add_commands

NAME = "policy"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(
        NAME, help="the policy store, and which policy serves, shadows or canaries on each site"
    )
    policy_sub = parser.add_subparsers(dest="policy_command", required=True)

    reg = policy_sub.add_parser(
        "register",
        help="check an ONNX policy and register it; its version is the sha256 of its bytes",
    )
    reg.add_argument("path", metavar="PATH.onnx", help="the ONNX policy file")
    reg.add_argument("--name", required=True, help="policy name (letters, digits, . _ -)")
    reg.add_argument(
        "--scenario",
        action="append",
        help="compatible scenario (small, large or a scenario YAML); repeat for several "
        "(default: the scenario in the ONNX metadata)",
    )
    reg.add_argument("--settings", metavar="FILE.json", help="training settings to store with it")
    reg.add_argument("--report", metavar="FILE.md|json", help="evaluation report to store with it")
    reg.add_argument("--json", action="store_true", help="print the stored metadata as JSON")
    add_kafka_options(reg)
    reg.set_defaults(func=run_register)

    listing = policy_sub.add_parser("list", help="every registered policy")
    listing.add_argument("--json", action="store_true", help="one JSON list of the metadata")
    add_kafka_options(listing)
    listing.set_defaults(func=run_list)

    add_show(policy_sub)  # any policy name of the one grammar (chuteflow/cli/policy_names.py)
    add_alias_commands(policy_sub)

    add_commands(policy_sub)
    add_canary_commands(policy_sub)


def run_register(args: argparse.Namespace) -> int:
    from decision.artifacts import check_name, inspect_artifact
    from floor.errors import ChuteflowError
    from stream.policy_store import describe, read_report, read_settings, register_policy

    check_name(args.name)
    path = Path(args.path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ChuteflowError(f"{path}: cannot read it ({error.strerror})") from None
    check = inspect_artifact(data, args.scenario, label=str(path))
    settings = read_settings(args.settings) if args.settings else None
    report = read_report(args.report) if args.report else None
    client = kafka_client(args)
    record, created = register_policy(
        client, args.name, check, data, settings=settings, report=report
    )
    if args.json:
        print_json({**describe(record), "created": created})
    else:
        state = "registered" if created else "already registered"
        print(f"{record.name}@{record.sha256}\t{state}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from stream.policy_store import describe, read_store

    records = sorted(
        read_store(kafka_client(args)).values(),
        key=lambda r: (str(r.metadata.get("registered_at", "")), r.name),
    )
    if args.json:
        print_json([describe(record) for record in records])
        return 0
    rows = [("NAME", "VERSION", "SCENARIOS", "REGISTERED_AT")] + [
        (
            r.name,
            r.sha256[:12],
            ",".join(r.metadata.get("scenarios", [])),
            str(r.metadata.get("registered_at", "")),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for *cells, registered_at in rows:
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
        print("  ".join([*padded, registered_at]))
    return 0
