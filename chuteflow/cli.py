"""The ``chuteflow`` command: argument parsing only; every command calls into a package.

Errors a user can fix (bad files, unknown scenarios, unusable guardrails) derive from
:class:`chuteflow.errors.ChuteflowError` and print as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from chuteflow.errors import ChuteflowError


def _cmd_contracts_export(args: argparse.Namespace) -> int:
    from contracts.schema_export import export_schemas

    for path in export_schemas(Path(args.dir)):
        print(path)
    return 0


def _add_contracts(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    contracts = sub.add_parser("contracts", help="event contracts for integrators")
    contracts_sub = contracts.add_subparsers(dest="contracts_command", required=True)
    export = contracts_sub.add_parser("export", help="write JSON Schema for every event")
    export.add_argument("dir", help="directory to write <event>.v<N>.schema.json into")
    export.set_defaults(func=_cmd_contracts_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chuteflow",
        description="Robust multi-agent chute allocation for robotic sortation, on Kafka.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_contracts(sub)
    from chuteflow import commands

    commands.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ChuteflowError as error:
        print(f"chuteflow: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
