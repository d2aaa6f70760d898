"""Bounded logging for the worker: a burst of the same record is logged a few times, then counted.

Why: while the broker is away, aiokafka and faust retry in tight loops and log every attempt.
One outage of a few minutes wrote 323,600 ERROR lines (67 MB) that said one thing. The
:class:`RepeatFilter` lets the same *kind* of record, ``(logger name, level, record.msg)``
(``record.msg`` is the message template, before ``%`` arguments such as a node id or an
exception are filled in), pass ``limit`` times per ``window_s`` seconds; the rest are
dropped and counted, and when the window rolls one line says how many were left out::

    suppressed 5391 similar messages in the last 60 s: 'Unable connect to node with id %s: %r'

The summary goes out with the next record any logger sends through the handler after the
window ended (a sweep runs at most once per window end, not per record), from
:meth:`RepeatFilter.roll` (the worker calls it on a timer, so a summary also comes when the
burst has stopped) or from :meth:`RepeatFilter.flush` (at shutdown). It carries the
suppressed records' logger name and level.

Installed on the root logger's handlers, not on loggers: a logger's filters do not see the
records its children propagate, a handler's do. One filter per handler, so a record that two
handlers emit is counted once by each.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_LIMIT = 5
DEFAULT_WINDOW_S = 60.0

_Key = tuple[str, int, str]


@dataclass
class _Window:
    start: float
    passed: int = 0
    suppressed: int = 0


class RepeatFilter(logging.Filter):
    """At most ``limit`` records of one ``(name, level, msg)`` per ``window_s``; then a summary.

    ``emit`` receives the summary records (normally the handler's ``handle``; see
    :func:`install_repeat_filter`); ``clock`` is injectable for tests (monotonic seconds).
    """

    SUMMARY_ATTR = "chuteflow_repeat_summary"
    EXEMPT_ATTR = "chuteflow_repeat_exempt"
    """A record with this attribute true always passes: lines bounded by nature (one per
    decision per site and interval) that share one template but must never be dropped."""

    def __init__(
        self,
        emit: Callable[[logging.LogRecord], object],
        *,
        limit: int = DEFAULT_LIMIT,
        window_s: float = DEFAULT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if limit < 1 or window_s <= 0:
            raise ValueError("RepeatFilter needs limit >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self._emit = emit
        self._clock = clock
        self._windows: dict[_Key, _Window] = {}
        self._next_roll = float("inf")
        self._lock = threading.RLock()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, self.SUMMARY_ATTR, False) or getattr(record, self.EXEMPT_ATTR, False):
            return True
        now = self._clock()
        key = (record.name, record.levelno, str(record.msg))
        with self._lock:
            summaries = self._roll(now) if now >= self._next_roll else []
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window(start=now)
                self._next_roll = min(self._next_roll, now + self.window_s)
            if window.passed < self.limit:
                window.passed += 1
                keep = True
            else:
                window.suppressed += 1
                keep = False
        for summary in summaries:
            self._emit(summary)
        return keep

    def roll(self) -> None:
        """Emit the summaries of the windows that have ended (a timer calls it, so a summary
        does not wait for the next record)."""
        with self._lock:
            now = self._clock()
            summaries = self._roll(now) if now >= self._next_roll else []
        for summary in summaries:
            self._emit(summary)

    def flush(self) -> None:
        """Emit the summaries of every window, ended or not (e.g. at shutdown)."""
        with self._lock:
            summaries = self._roll(self._clock(), everything=True)
        for summary in summaries:
            self._emit(summary)

    def _roll(self, now: float, *, everything: bool = False) -> list[logging.LogRecord]:
        """Forget the windows that ended by ``now`` (all with ``everything``); the summaries
        of those that dropped any."""
        summaries = []
        ended = [
            key for key, w in self._windows.items() if everything or now >= w.start + self.window_s
        ]
        for key in ended:
            window = self._windows.pop(key)
            if window.suppressed:
                summaries.append(self._summary(key, window, now))
        self._next_roll = min(
            (w.start + self.window_s for w in self._windows.values()), default=float("inf")
        )
        return summaries

    def _summary(self, key: _Key, window: _Window, now: float) -> logging.LogRecord:
        name, level, template = key
        span = min(now - window.start, self.window_s)
        record = logging.LogRecord(
            name,
            level,
            __file__,
            0,
            "suppressed %d similar messages in the last %.0f s: %r",
            (window.suppressed, span, template),
            None,
        )
        setattr(record, self.SUMMARY_ATTR, True)
        return record


def install_repeat_filter(
    logger: logging.Logger | None = None,
    *,
    limit: int = DEFAULT_LIMIT,
    window_s: float = DEFAULT_WINDOW_S,
) -> list[RepeatFilter]:
    """Add a :class:`RepeatFilter` to each handler of ``logger`` (default: root) that has none.

    Idempotent: a handler that already carries one is left alone. Returns the filters added.
    """
    logger = logger or logging.getLogger()
    added = []
    for handler in logger.handlers:
        if any(isinstance(f, RepeatFilter) for f in handler.filters):
            continue
        repeat = RepeatFilter(handler.handle, limit=limit, window_s=window_s)
        handler.addFilter(repeat)
        added.append(repeat)
    _INSTALLED.extend(added)
    return added


_INSTALLED: list[RepeatFilter] = []


def roll_installed() -> None:
    """:meth:`RepeatFilter.roll` on every filter :func:`install_repeat_filter` added."""
    for repeat in _INSTALLED:
        repeat.roll()


def flush_installed() -> None:
    """:meth:`RepeatFilter.flush` on every filter :func:`install_repeat_filter` added."""
    for repeat in _INSTALLED:
        repeat.flush()


__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_WINDOW_S",
    "RepeatFilter",
    "flush_installed",
    "install_repeat_filter",
    "roll_installed",
]
