"""The worker's bound on repeated log records (stream.logs), on a clock the test moves."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.logs import RepeatFilter, flush_installed, install_repeat_filter, roll_installed


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup() -> Iterator[tuple[logging.Logger, io.StringIO, RepeatFilter, Clock]]:
    """A private logger tree whose one handler carries the filter (as root's handlers do)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    clock = Clock()
    repeat = RepeatFilter(handler.handle, limit=5, window_s=60.0, clock=clock)
    handler.addFilter(repeat)
    parent = logging.getLogger("test_logs_tree")
    parent.addHandler(handler)
    parent.setLevel(logging.DEBUG)
    parent.propagate = False
    try:
        yield parent, out, repeat, clock
    finally:
        parent.removeHandler(handler)


def _lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_a_burst_passes_limit_times_then_one_summary_when_the_window_rolls(
    setup: tuple[logging.Logger, io.StringIO, RepeatFilter, Clock],
) -> None:
    _, out, _, clock = setup
    # A child logger: the records propagate to the parent's handler, as aiokafka's reach root.
    log = logging.getLogger("test_logs_tree.aiokafka")
    for node in range(1000):
        log.error("Unable connect to node with id %s: %r", node, OSError("refused"))
        clock.now += 0.01
    lines = _lines(out)
    assert len(lines) == 5
    assert lines[0] == "ERROR test_logs_tree.aiokafka Unable connect to node with id 0: " + repr(
        OSError("refused")
    )

    clock.now += 60.0  # the window has ended; the next record brings the summary first
    log.error("Unable connect to node with id %s: %r", 7, OSError("refused"))
    lines = _lines(out)
    assert lines[5] == (
        "ERROR test_logs_tree.aiokafka suppressed 995 similar messages in the last 60 s: "
        "'Unable connect to node with id %s: %r'"
    )
    assert lines[6].startswith("ERROR test_logs_tree.aiokafka Unable connect to node with id 7")
    assert len(lines) == 7


def test_kinds_are_counted_apart_by_logger_level_and_template(
    setup: tuple[logging.Logger, io.StringIO, RepeatFilter, Clock],
) -> None:
    _, out, _, _ = setup
    one = logging.getLogger("test_logs_tree.one")
    two = logging.getLogger("test_logs_tree.two")
    for i in range(10):
        one.error("lost %s", i)
        one.warning("lost %s", i)  # other level
        two.error("lost %s", i)  # other logger
        one.error("gone %s", i)  # other template
    assert len(_lines(out)) == 4 * 5


def test_a_quiet_kind_is_never_summarised_and_a_new_window_passes_again(
    setup: tuple[logging.Logger, io.StringIO, RepeatFilter, Clock],
) -> None:
    _, out, _, clock = setup
    log = logging.getLogger("test_logs_tree.q")
    for _ in range(3):
        log.warning("rebalancing")
    clock.now += 61
    for _ in range(5):
        log.warning("rebalancing")
    lines = _lines(out)
    assert len(lines) == 8
    assert not any("suppressed" in line for line in lines)


def test_the_summary_comes_with_any_later_record_and_flush_emits_the_rest(
    setup: tuple[logging.Logger, io.StringIO, RepeatFilter, Clock],
) -> None:
    _, out, repeat, clock = setup
    noisy = logging.getLogger("test_logs_tree.noisy")
    other = logging.getLogger("test_logs_tree.other")
    for _ in range(8):
        noisy.error("down")
    clock.now += 60
    other.info("something else")  # a different kind: the ended window is swept all the same
    lines = _lines(out)
    assert lines[5:] == [
        "ERROR test_logs_tree.noisy suppressed 3 similar messages in the last 60 s: 'down'",
        "INFO test_logs_tree.other something else",
    ]
    for _ in range(7):
        noisy.error("down")
    clock.now += 10
    repeat.flush()  # shutdown: the open window's count is not lost
    assert _lines(out)[-1] == (
        "ERROR test_logs_tree.noisy suppressed 2 similar messages in the last 10 s: 'down'"
    )
    repeat.flush()
    assert _lines(out)[-1].endswith("in the last 10 s: 'down'")  # nothing new to say


def test_install_adds_one_filter_per_handler_idempotently() -> None:
    logger = logging.getLogger("test_logs_install")
    handlers = [logging.StreamHandler(io.StringIO()), logging.StreamHandler(io.StringIO())]
    for handler in handlers:
        logger.addHandler(handler)
    try:
        assert len(install_repeat_filter(logger)) == 2
        assert install_repeat_filter(logger) == []
        for handler in handlers:
            assert sum(isinstance(f, RepeatFilter) for f in handler.filters) == 1
        for _ in range(7):
            logger.error("again")
        flush_installed()  # what the worker does at shutdown
        for handler in handlers:
            assert isinstance(handler, logging.StreamHandler)
            lines = handler.stream.getvalue().splitlines()
            assert lines[-1] == "suppressed 2 similar messages in the last 0 s: 'again'"
        roll_installed()  # the worker's timer: nothing ended, nothing said
    finally:
        for handler in handlers:
            logger.removeHandler(handler)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        RepeatFilter(print, limit=0)
    with pytest.raises(ValueError):
        RepeatFilter(print, window_s=0)


def test_roll_emits_ended_windows_without_waiting_for_a_record(
    setup: tuple[logging.Logger, io.StringIO, RepeatFilter, Clock],
) -> None:
    _, out, repeat, clock = setup
    log = logging.getLogger("test_logs_tree.r")
    for _ in range(9):
        log.error("gone")
    repeat.roll()  # the window runs: nothing to say yet
    assert len(_lines(out)) == 5
    clock.now += 60
    repeat.roll()
    assert _lines(out)[5:] == [
        "ERROR test_logs_tree.r suppressed 4 similar messages in the last 60 s: 'gone'"
    ]
    repeat.roll()
    assert len(_lines(out)) == 6


# ---------------------------------------------------------------- the worker's own log lines


def _capture(fmt: str) -> tuple[io.StringIO, logging.Handler]:
    from stream.worker_log import JsonFormatter, TextFormatter

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return out, handler


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_decision_and_dead_letter_lines_carry_their_fields_and_no_control_characters(
    fmt: str,
) -> None:
    import json

    from stream.observations import DeadLetterObserved, DecisionObserved
    from stream.worker_log import log_dead_letter, log_decision

    out, handler = _capture(fmt)
    for name in ("chuteflow.decisions", "chuteflow.dead_letters"):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        served = DecisionObserved(
            "site-small", 3, 1.25, "optimal", "PolicyTimeout: late", "proportional", "1",
            day="2025-01-06", route_revision=2, fallback_reason="PolicyTimeout: late",
            fallback_from="drmarl@4", trigger="interval_closed",
        )  # fmt: skip
        log_decision(served)
        log_decision(DecisionObserved("site-small", 3, 2.0, "optimal", None, "x", "1", "shadow"))
        log_dead_letter(
            DeadLetterObserved("unknown", "t", 0, 7, "decode", "decode: bad byte \x1b[?25l")
        )
    finally:
        for name in ("chuteflow.decisions", "chuteflow.dead_letters"):
            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).setLevel(logging.NOTSET)
    text = out.getvalue()
    assert "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 2  # the shadow decision is DEBUG
    if fmt == "json":
        decision, letter = (json.loads(line) for line in lines)
        assert decision["logger"] == "chuteflow.decisions" and decision["level"] == "INFO"
        assert decision["site"] == "site-small" and decision["interval"] == 3
        assert decision["policy"] == "proportional@1" and decision["fallback"] is True
        assert decision["fallback_from"] == "drmarl@4" and decision["latency_ms"] == 1.25
        assert letter["reason_kind"] == "decode" and letter["level"] == "WARNING"
        assert "\\x1b" in letter["msg"]
    else:
        assert lines[0].endswith(
            "INFO chuteflow.decisions served decision site=site-small day=2025-01-06 "
            "interval=3 policy=proportional@1 route_revision=2 status=optimal "
            "fallback_from=drmarl@4 fallback_reason='PolicyTimeout: late' latency_ms=1.2"
        )
        assert "WARNING chuteflow.dead_letters dead letter (decode) site=unknown" in lines[1]
        assert "\\x1b[?25l" in lines[1]


@pytest.mark.kafka
def test_a_json_worker_log_is_one_object_per_line_and_one_decision_per_interval(
    kafka_topics: str, tmp_path: Path
) -> None:
    import json
    import uuid

    from floor.daytypes import default_groups
    from floor.scenario import load_scenario
    from replay.loop import day_type_group, replay_day
    from replay.workers import start_worker, stop_worker
    from twin.groups import sample_day

    scenario = load_scenario("small")
    groups = default_groups(scenario)
    demand = sample_day(groups, 3, scenario, seed=9)
    app_id = f"logs-{uuid.uuid4().hex[:8]}"
    extra = ["--log-format", "json"]
    worker = start_worker(kafka_topics, ["small"], tmp_path, app_id=app_id, extra=extra)
    try:
        replay_day(demand, 9, kafka_topics, day_type_group(groups, demand), run_id=app_id)
        time.sleep(1.0)
    finally:
        stop_worker(worker)
    raw = (tmp_path / f"{app_id}.log").read_bytes()
    assert b"\x1b" not in raw
    records = [json.loads(line) for line in raw.decode().splitlines()]  # every line parses
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    decisions = [r for r in records if r.get("event") == "decision" and r["role"] == "served"]
    assert sorted(r["interval"] for r in decisions) == list(range(scenario.n_intervals))
    assert {r["site"] for r in decisions} == {scenario.site_id}
    started = [r for r in records if r.get("event") == "worker_started"]
    assert len(started) == 1 and started[0]["group"] == app_id
    assert scenario.site_id in started[0]["sites"]
