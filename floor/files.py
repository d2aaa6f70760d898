"""Files and folders written whole or not at all.

Why: a run killed while it writes (kill -9, a crash, a full disk) must not leave a file that
a resume reads as finished and then fails to parse; onboarding's journal and a training run's
completion marker are read back by the next run. Writing beside the target and renaming is
atomic on one filesystem, so a reader sees the old file, no file, or the whole new one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from floor.errors import ChuteflowError


class OutputFolderError(ChuteflowError):
    """An output folder that holds files the command did not write (one line, exit 2)."""


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, str):
        tmp.write_text(data)
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


def _unlisted(out: Path, record: str, listed: Callable[[Any], set[str]]) -> list[str]:
    """Files under ``out`` (relative paths) that its ``record`` does not list as written: all of
    them where there is no record or it is not the command's."""
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir())
    try:
        known = listed(json.loads((out / record).read_text())) | {record}
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError):
        return files
    return [name for name in files if name not in known]


@contextmanager
def output_folder(out: Path, record: str, listed: Callable[[Any], set[str]]) -> Iterator[Path]:
    """A new, empty folder to write a command's whole output into; it becomes ``out`` when the
    block ends without an error, replacing an earlier output of the same command.

    Why: a folder of day files is read as a whole (a history). Written straight into ``--out``,
    a second ``site synth`` of one year over an earlier one of two kept the old second year,
    and ``site check`` called the mixed history usable. Here the new output is built in
    ``OUT.partial`` (a crash leaves ``out`` as it was) and swapped in whole. ``out`` may be
    missing, empty, or an earlier output of the command: every file in it is listed as written
    by the JSON ``record`` file there (``listed`` reads the record's list). Anything else is
    refused, so the command never deletes a file it did not write.
    """
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise OutputFolderError(f"{out}: exists and is not a folder; choose another --out")
        foreign = _unlisted(out, record, listed)
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise OutputFolderError(
                f"{out}: holds files this command did not write ({foreign[0]}{more}); "
                "choose another --out or empty it"
            )
    resolved = out.resolve()
    partial = resolved.with_name(f"{resolved.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)  # what a killed run left
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    old = resolved.with_name(f".{resolved.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if resolved.exists():
        os.replace(resolved, old)
    os.replace(partial, resolved)
    shutil.rmtree(old, ignore_errors=True)


__all__ = ["OutputFolderError", "output_folder", "write_atomic"]
