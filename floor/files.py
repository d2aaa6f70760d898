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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


def _holds(record: Path, key: str) -> bool:
    try:
        data = json.loads(record.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and key in data


@contextmanager
def output_folder(out: Path, marker: str, key: str) -> Iterator[Path]:
    """A new, empty folder to write a command's whole output into; it becomes ``out`` when the
    block ends without an error, replacing an earlier output of the same command.

    Why: a folder of day files is read as a whole (a history). Written straight into ``--out``,
    a second ``site synth`` of one year over an earlier one of two kept the old second year,
    and ``site check`` called the mixed history usable. Here the new output is built in
    ``OUT.partial`` (a crash leaves ``out`` as it was) and swapped in whole. ``out`` may be
    missing, empty, or an earlier output of the command (it holds ``marker``); anything else is
    refused, so the command never deletes files it did not write.

    An earlier output is told by its record: ``marker`` is a JSON object with ``key`` (a name
    alone could be another command's file, such as a bundle's ``manifest.json``).
    """
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise OutputFolderError(f"{out}: exists and is not a folder; choose another --out")
        if any(out.iterdir()) and not _holds(out / marker, key):
            raise OutputFolderError(
                f"{out}: holds files this command did not write (no {marker}); "
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
