"""What ``chuteflow worker`` writes to its log, and in which format.

An on-call engineer reads the worker's log to see what it decides, so the default (INFO)
log is the worker's own story, one line per event that matters:

- one startup summary (sites, policies, route and fallback, bootstrap, topics, group);
- one line per served decision per site and interval (``chuteflow.decisions``, INFO): site,
  day, interval, policy@version, solver status, fallback and its reason if any, latency ms;
  shadow decisions the same at DEBUG;
- one line per dead letter with its reason (``chuteflow.dead_letters``, WARNING), bounded by
  :mod:`stream.logs` per reason kind (the kind is part of the message template, so a flood of
  one kind does not hide another).

faust's, mode's and aiokafka's own chatter goes through the same handler at WARNING unless
``--library-loglevel`` says otherwise. faust's progress spinner is never installed (it writes
terminal control sequences such as ``ESC[?25l`` even to a file), and every line is stripped
of control characters, whatever a hostile record's bytes put into a reason.

``--log-format json`` writes one JSON object per line (``ts``, ``level``, ``logger``, ``msg`` and
the event's fields: ``site``, ``interval``, ``policy`` ...) for log shippers.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from stream.logs import RepeatFilter, install_repeat_filter
from stream.observations import DeadLetterObserved, DecisionObserved

LOG_FORMATS = ("text", "json")
LIBRARY_LOGGERS = ("faust", "mode", "aiokafka", "kafka", "asyncio", "venusian")
"""Third-party loggers kept at ``--library-loglevel`` (WARNING by default)."""
FIELDS_ATTR = "chuteflow_fields"
"""LogRecord attribute holding an event's structured fields (``extra={FIELDS_ATTR: {...}}``)."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escape(text: str) -> str:
    """Control characters (ESC, BEL, CR ...) as ``\\xNN``: a log line never drives a terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``2025-01-01T06:00:00.123Z INFO chuteflow.decisions decision site=... ``; one line per
    record (a traceback's lines follow, indented)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name} "
        line += _escape(record.getMessage()).replace("\n", "\\n")
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            line += "\n" + "\n".join("    " + _escape(t) for t in trace.splitlines())
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": _escape(record.getMessage()),
        }
        fields = getattr(record, FIELDS_ATTR, None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                body.setdefault(str(key), value)
        if record.exc_info:
            body["exc"] = _escape(self.formatException(record.exc_info))
        # ensure_ascii: every control character is a \\u escape, never a raw byte
        return json.dumps(body, default=str, ensure_ascii=True)


def configure_logging(
    level: str | int = "INFO",
    fmt: str = "text",
    *,
    library_level: str | int = "WARNING",
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send every log record to one handler on ``stream`` (default stderr) in ``fmt``.

    Replaces the root logger's handlers (faust's own setup is switched off by the worker,
    ``override_logging=False``), keeps third-party loggers at ``library_level`` and bounds
    repeated records (:func:`stream.logs.install_repeat_filter`). Returns the handler.

    Raises:
        ValueError: an unknown format or level (one line, before anything starts).
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"--log-format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_level(level))
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(_level(library_level))
    install_repeat_filter(root)
    return handler


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r} (DEBUG, INFO, WARNING, ERROR)")
    return number


def log_event(logger: logging.Logger, level: int, msg: str, fields: Mapping[str, Any]) -> None:
    """``msg`` as given (text format), with ``fields`` for the JSON format; one-off lines
    (the startup summary), never thinned by the repeat filter."""
    if logger.isEnabledFor(level):
        extra = {FIELDS_ATTR: dict(fields), RepeatFilter.EXEMPT_ATTR: True}
        logger.log(level, "%s", msg, extra=extra)


_decisions = logging.getLogger("chuteflow.decisions")
_dead_letters = logging.getLogger("chuteflow.dead_letters")


def log_decision(decision: DecisionObserved) -> None:
    """One line per decision: served at INFO, shadow at DEBUG (the processor's hook)."""
    level = logging.INFO if decision.role == "served" else logging.DEBUG
    if not _decisions.isEnabledFor(level):
        return
    fields: dict[str, Any] = {
        "event": "decision",
        "role": decision.role,
        "site": decision.site_id,
        "day": decision.day,
        "interval": decision.interval_index,
        "policy": decision.policy,
        "route_revision": decision.route_revision,
        "solver_status": decision.solver_status,
        "fallback": decision.fallback_reason is not None,
        "latency_ms": round(decision.total_ms, 2),
        "trigger": decision.trigger,
    }
    text = (
        f"{decision.role} decision site={decision.site_id} day={decision.day} "
        f"interval={decision.interval_index} policy={decision.policy} "
        f"route_revision={decision.route_revision} status={decision.solver_status} "
    )
    if decision.fallback_reason is not None:
        reason = decision.fallback_reason[:300]
        fields |= {"fallback_from": decision.fallback_from, "fallback_reason": reason}
        text += f"fallback_from={decision.fallback_from} fallback_reason={reason!r} "
    elif decision.policy_error is not None:  # no fallback policy: the last allocation kept
        fields |= {"policy_error": decision.policy_error[:300]}
        text += f"policy_error={decision.policy_error[:300]!r} "
    text += f"latency_ms={decision.total_ms:.1f}"
    # One per site and interval by nature: never thinned by the repeat filter.
    _decisions.log(level, "%s", text, extra={FIELDS_ATTR: fields, RepeatFilter.EXEMPT_ATTR: True})


def log_dead_letter(letter: DeadLetterObserved) -> None:
    """One WARNING line per dead letter; at most a few per reason kind and minute pass
    (:mod:`stream.logs` counts the rest), the metrics count every one."""
    if not _dead_letters.isEnabledFor(logging.WARNING):
        return
    fields = {
        "event": "dead_letter",
        "site": letter.site_id,
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "reason_kind": letter.kind,
        "reason": letter.reason[:500],
    }
    # The kind in the template, not as an argument: the repeat filter's windows are per
    # template, so each kind gets its own few lines per minute.
    _dead_letters.warning(
        f"dead letter ({letter.kind}) site=%s topic=%s partition=%s offset=%s reason=%s",
        letter.site_id,
        letter.topic,
        letter.partition,
        letter.offset,
        letter.reason[:500],
        extra={FIELDS_ATTR: fields},
    )


__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "log_dead_letter",
    "log_decision",
    "log_event",
]
