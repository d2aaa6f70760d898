"""``chuteflow policy show`` and ``policy alias set|remove|list``: policy names the way every
verb takes them (``rollout/refs.py``), and the aliases of store versions
(``stream/policy_alias.py``).

``policy show`` takes any name of the grammar: a store version (``NAME@VERSION``,
``NAME@latest``, ``NAME@ALIAS``, ``sha256:HEX``), a shipped name or ``.onnx`` path (the store
record with the same bytes when there is one, else what the file says of itself), or a bare
store name (its latest version).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from chuteflow.cli._shared import Subparsers, add_kafka_options, kafka_client, print_json


def add_show(sub: Subparsers) -> None:
    show = sub.add_parser(
        "show",
        help="all metadata of one policy, as one JSON document",
        description="Any policy name: NAME@VERSION, NAME@latest, NAME@ALIAS, sha256:HEX, a "
        "shipped name (drmarl-small) or PATH.onnx (with its store record when registered), or "
        "a bare store name (its latest version).",
    )
    show.add_argument("ref", metavar="POLICY", help="the policy, in any form above")
    add_kafka_options(show)
    show.set_defaults(func=run_show)


def add_alias_commands(sub: Subparsers) -> None:
    alias = sub.add_parser(
        "alias",
        help="name store versions: NAME@ALIAS (e.g. @champion), like MLflow's model aliases",
        description="Aliases live on the policy store's topic beside the versions. A command "
        "resolves an alias when it runs: a route keeps the hash it resolved to, so moving an "
        "alias changes nothing that serves already. NAME@latest is built in.",
    )
    alias_sub = alias.add_subparsers(dest="alias_command", required=True)
    set_ = alias_sub.add_parser("set", help="point NAME@ALIAS at a version")
    set_.add_argument("ref", metavar="NAME@VERSION", help="the version (any store form)")
    set_.add_argument("alias", metavar="ALIAS", help="lower-case letters, digits, _ or -")
    set_.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_kafka_options(set_)
    set_.set_defaults(func=run_alias_set)

    remove = alias_sub.add_parser("remove", help="remove NAME@ALIAS")
    remove.add_argument("ref", metavar="NAME@ALIAS")
    add_kafka_options(remove)
    remove.set_defaults(func=run_alias_remove)

    listing = alias_sub.add_parser("list", help="every alias and the version it names")
    listing.add_argument("--json", action="store_true", help="one JSON list on stdout")
    add_kafka_options(listing)
    listing.set_defaults(func=run_alias_list)


def _file_view(path: Path) -> dict[str, Any]:
    from decision.artifacts import inspect_artifact
    from floor.errors import ChuteflowError

    try:
        data = path.read_bytes()
    except OSError as error:
        raise ChuteflowError(f"{path}: cannot read it ({error.strerror})") from None
    check = inspect_artifact(data, None, label=str(path))
    return {
        "name": path.stem,
        "file": str(path),
        "version": check.sha256,
        "short_version": check.sha256[:12],
        "size": check.size,
        "features": list(check.features),
        "scenarios": list(check.scenarios),
        "guardrail_versions": dict(check.guardrail_versions),
        "onnx_metadata": dict(check.onnx_metadata),
    }


def show(args: argparse.Namespace) -> dict[str, Any]:
    """What ``policy show`` prints for ``args.ref``."""
    from decision.artifacts import check_name
    from rollout.refs import RefError, is_store_name, shipped
    from stream.policy_alias import read_registry, resolve_ref
    from stream.policy_store import describe, parse_ref

    text = args.ref
    if is_store_name(text):
        from stream.policy_alias import is_alias_ref

        if not is_alias_ref(text):
            parse_ref(text)  # a malformed reference is one line before connecting
        return describe(resolve_ref(read_registry(kafka_client(args)), text))
    path = shipped().get(text)
    if path is None and text.lower().endswith(".onnx"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise RefError(f"policy {text}: no such file")
    if path is not None:
        view = _file_view(path)
        record = read_registry(kafka_client(args)).records.get(view["version"])
        if record is None:
            return {**view, "registered": False}
        return {**describe(record), "file": str(path), "registered": True}
    check_name(text)
    return {**describe(resolve_ref(read_registry(kafka_client(args)), f"{text}@latest"))}


def run_show(args: argparse.Namespace) -> int:
    print_json(show(args))
    return 0


def run_alias_set(args: argparse.Namespace) -> int:
    from stream.policy_alias import set_alias

    made = set_alias(kafka_client(args), args.ref, args.alias)
    if args.json:
        print_json({"alias": f"{made.name}@{made.alias}", "version": made.version})
    else:
        print(f"{made.name}@{made.alias} -> {made.name}@{made.version[:12]}")
    return 0


def run_alias_remove(args: argparse.Namespace) -> int:
    from floor.errors import ChuteflowError
    from stream.policy_alias import remove_alias

    name, at, alias = args.ref.rpartition("@")
    if not at or not name:
        raise ChuteflowError(f"alias {args.ref!r}: expected NAME@ALIAS")
    removed = remove_alias(kafka_client(args), name, alias)
    print(f"{args.ref} {'removed' if removed else 'was not set'}")
    return 0


def run_alias_list(args: argparse.Namespace) -> int:
    from stream.policy_alias import read_registry

    registry = read_registry(kafka_client(args))
    rows = sorted(registry.aliases.values(), key=lambda a: (a.name, a.alias))
    if args.json:
        print_json(
            [
                {"alias": f"{a.name}@{a.alias}", "version": a.version, "set_at": a.set_at}
                for a in rows
            ]
        )
        return 0
    for a in rows:
        print(f"{a.name}@{a.alias}  {a.version[:12]}  {a.set_at}")
    return 0


__all__ = ["add_alias_commands", "add_show", "show"]
