"""A dependency-free progress bar on stderr, so JSON on stdout stays clean."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``Progress(total, label)``; call ``update(done, note)``; ``close()`` ends the line.

    Silent when stderr is not a terminal unless ``force`` is set, so logs and CI output are
    not flooded with carriage returns.
    """

    def __init__(
        self, total: int, label: str, stream: TextIO | None = None, force: bool = False
    ) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = force or self.stream.isatty()
        self._start = time.monotonic()
        self._last = 0.0

    def update(self, done: int, note: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < self.total and now - self._last < 0.1:
            return
        self._last = now
        width = 30
        filled = int(width * done / self.total)
        elapsed = now - self._start
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {done}/{self.total} {elapsed:5.1f}s {note}".ljust(100)
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
