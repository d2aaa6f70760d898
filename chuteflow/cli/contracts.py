"""``chuteflow contracts export|asyncapi``: JSON Schema of every message type on every topic
and the AsyncAPI 3.0 document, for WCS integrators (both generated from ``contracts/``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chuteflow.cli._shared import Subparsers

NAME = "contracts"
ASYNCAPI_FILE = "asyncapi.yaml"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(NAME, help="event contracts for integrators")
    contracts_sub = parser.add_subparsers(dest="contracts_command", required=True)
    export = contracts_sub.add_parser(
        "export",
        help="write a JSON Schema per message type of every topic, and the AsyncAPI document",
    )
    export.add_argument(
        "dir", help=f"directory to write <message>.v<N>.schema.json and {ASYNCAPI_FILE} into"
    )
    export.add_argument(
        "--no-asyncapi", action="store_true", help=f"write only the schemas, not {ASYNCAPI_FILE}"
    )
    export.set_defaults(func=run_export)
    asyncapi = contracts_sub.add_parser(
        "asyncapi", help="write the AsyncAPI 3.0 document (topics, keys, schemas, guarantees)"
    )
    asyncapi.add_argument(
        "--out", help="file to write (the repository's copy is docs/asyncapi.yaml); default stdout"
    )
    asyncapi.set_defaults(func=run_asyncapi)


def run_export(args: argparse.Namespace) -> int:
    from contracts.asyncapi import render
    from contracts.schema_export import export_schemas

    directory = Path(args.dir)
    for path in export_schemas(directory):
        print(path)
    if not args.no_asyncapi:
        path = directory / ASYNCAPI_FILE
        path.write_text(render())
        print(path)
    return 0


def run_asyncapi(args: argparse.Namespace) -> int:
    from contracts.asyncapi import render

    text = render()
    if args.out is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(out)
    return 0
