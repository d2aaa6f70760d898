"""``chuteflow contracts export``: JSON Schema of every event, for WCS integrators."""

from __future__ import annotations

import argparse
from pathlib import Path

from chuteflow.cli._shared import Subparsers

NAME = "contracts"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="event contracts for integrators")
    contracts_sub = parser.add_subparsers(dest="contracts_command", required=True)
    export = contracts_sub.add_parser("export", help="write JSON Schema for every event")
    export.add_argument("dir", help="directory to write <event>.v<N>.schema.json into")
    export.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from contracts.schema_export import export_schemas

    for path in export_schemas(Path(args.dir)):
        print(path)
    return 0
