"""Progress of long jobs on stderr (stdout stays clean for tables and JSON).

On a terminal: a tqdm bar with rate and ETA. Elsewhere (CI, a log file, a pipe): one plain
line every ``CHUTEFLOW_PROGRESS_SECONDS`` (default 30) with done/total, elapsed time and ETA,
and a last line when such a job ends, so an 11-minute ``evaluate`` under CI shows that it is alive
and how long it has left, without flooding the log with carriage returns.
``CHUTEFLOW_PROGRESS=0`` silences both.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

PERIOD_ENV = "CHUTEFLOW_PROGRESS_SECONDS"
SWITCH_ENV = "CHUTEFLOW_PROGRESS"
DEFAULT_PERIOD_S = 30.0


def _clock(seconds: float) -> str:
    """``1h02m03s`` / ``4m05s`` / ``6s``."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _period() -> float:
    try:
        return max(0.0, float(os.environ.get(PERIOD_ENV, DEFAULT_PERIOD_S)))
    except ValueError:
        return DEFAULT_PERIOD_S


class Progress:
    """``Progress(total, label)``; call ``update(done, note)`` with the count done so far;
    ``close()`` ends it.

    ``interactive`` forces the bar (True) or the plain lines (False); by default the bar is
    used when the stream is a terminal.
    """

    def __init__(
        self,
        total: int,
        label: str,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        period_s: float | None = None,
    ) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = os.environ.get(SWITCH_ENV, "1") != "0"
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.period_s = _period() if period_s is None else period_s
        self._start = time.monotonic()
        self._last_line = self._start
        self._lines = 0
        self._done = 0
        self._note = ""
        self._bar: tqdm[Any] | None = None
        if self.enabled and self.interactive:
            self._bar = tqdm(total=self.total, desc=label, file=self.stream, dynamic_ncols=True)

    def update(self, done: int, note: str = "") -> None:
        if not self.enabled:
            return
        done = min(done, self.total)
        if self._bar is not None:
            self._bar.update(done - self._done)
            if note:
                self._bar.set_postfix_str(note, refresh=False)
            self._done = done
            return
        self._done, self._note = done, note
        now = time.monotonic()
        if now - self._last_line >= self.period_s and done < self.total:
            self._last_line = now
            self._line(now)

    def line(self) -> str:
        """The plain status line: ``label: 12/48 (25%) elapsed 1m02s, ETA 3m06s[, note]``."""
        return self._format(time.monotonic())

    def _format(self, now: float) -> str:
        elapsed = now - self._start
        share = self._done / self.total
        if self._done >= self.total:
            tail = "done"
        elif self._done > 0:
            tail = f"ETA {_clock(elapsed / share - elapsed)}"
        else:
            tail = "ETA unknown"
        text = (
            f"{self.label}: {self._done}/{self.total} ({100 * share:.0f}%) "
            f"elapsed {_clock(elapsed)}, {tail}"
        )
        return text + (f", {self._note}" if self._note else "")

    def _line(self, now: float) -> None:
        self._lines += 1
        self.stream.write(self._format(now) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            return
        if self._lines:  # a job that outlasted one period ends with its last line
            self._line(time.monotonic())


__all__ = ["DEFAULT_PERIOD_S", "PERIOD_ENV", "SWITCH_ENV", "Progress"]
