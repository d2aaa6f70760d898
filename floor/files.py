"""Files written whole or not at all.

Why: a run killed while it writes (kill -9, a crash, a full disk) must not leave a file that
a resume reads as finished and then fails to parse; onboarding's journal and a training run's
completion marker are read back by the next run. Writing beside the target and renaming is
atomic on one filesystem, so a reader sees the old file, no file, or the whole new one.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, str):
        tmp.write_text(data)
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


__all__ = ["write_atomic"]
