"""The ``chuteflow`` command: one module per verb, each parsing its arguments and calling into
the packages that do the work.

Every verb module has a ``NAME`` and ``register(sub)``, which adds its parser (and any
subcommands) and sets ``func(args) -> int``; :data:`VERBS` is the one list of them.

Errors a user can fix (bad files, unknown scenarios, unusable guardrails) derive from
:class:`floor.errors.ChuteflowError` and print as one line with exit code 2; so do usage errors
(:class:`chuteflow.cli._shared.ChuteflowParser`). The grammar every verb follows (flag names,
defaults, ``--json``, numbers, Kafka connections) is in ``chuteflow/cli/_shared.py``.

Importing this package loads no numpy (the verb modules import their packages only when they
register or run), so :func:`main` can still set the BLAS thread defaults first.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from chuteflow.cli import (
    bench,
    contracts,
    days,
    demo,
    evaluate,
    kafka,
    ops,
    policy,
    replay,
    shadow,
    simulate,
    site,
    train,
    worker,
)
from chuteflow.cli._shared import ChuteflowParser, Verb
from floor.errors import ChuteflowError
from floor.threads import pin_blas

VERBS: tuple[Verb, ...] = (
    demo,
    simulate,
    evaluate,
    days,
    train,
    kafka,
    policy,
    shadow,
    worker,
    replay,
    contracts,
    bench,
    ops,
    site,
)
"""Every verb of ``chuteflow``, in the order ``chuteflow --help`` lists them."""


def version() -> str:
    """The installed distribution's version (``pyproject.toml``)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("chuteflow")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = ChuteflowParser(
        prog="chuteflow",
        description="Robust multi-agent chute allocation for robotic sortation, on Kafka.",
    )
    parser.add_argument("--version", action="version", version=f"chuteflow {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        verb.register(sub)
    return parser


def _line_buffered() -> None:
    """Each line out as it is printed, also when stdout is a file or a pipe (a supervisor's
    log, ``| tee``): a long-running verb (``policy canary``, ``gate``, ``worker``) says where
    it is while it runs, not at exit. Python buffers such a stdout in 8 KiB blocks unless
    ``PYTHONUNBUFFERED`` is set, so a watcher's "no day yet" line sat unseen for the whole
    wait."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)


def main(argv: Sequence[str] | None = None) -> int:
    pin_blas()  # before anything imports numpy; see floor/threads.py
    _line_buffered()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ChuteflowError as error:
        print(f"chuteflow: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        # A broker failure the verb did not expect (it went away mid-command): one line too.
        if not type(error).__module__.startswith("confluent_kafka"):
            raise
        print(f"chuteflow: Kafka: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    return code


__all__ = ["VERBS", "build_parser", "main", "version"]
