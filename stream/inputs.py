"""The topics the worker reads, and the partition a site's records must arrive on.

Kept apart from the processor so that the agent, the metrics, the readiness probe and the
tools (``replay.workers``) can name the worker's inputs without importing its record handling.
"""

from __future__ import annotations

from contracts.topics import (
    CHUTE_STATE,
    CONTROL,
    INDUCTIONS,
    INTERVALS,
    SORTATION,
    TopicSpec,
)

FLOOR_TOPICS: tuple[TopicSpec, ...] = (INDUCTIONS, SORTATION, CHUTE_STATE)
"""Topics whose records the tracker counts (and ``events_in_interval`` names)."""
EVENT_TOPICS: tuple[TopicSpec, ...] = (*FLOOR_TOPICS, INTERVALS)
"""Input topics of contract events (``contracts.events``)."""
INPUT_TOPICS: tuple[TopicSpec, ...] = (*EVENT_TOPICS, CONTROL)
"""Everything the worker's one agent consumes, in one stream so a site stays on one worker;
the control topic too, so a site's routes reach the worker that owns it."""
BY_NAME = {spec.name: spec for spec in EVENT_TOPICS}
"""Event topic by name (the decoder checks an event's type against its topic)."""
FLOOR_NAMES = frozenset(spec.name for spec in FLOOR_TOPICS)
"""Names of the topics ``interval_closed.events_in_interval`` may count."""

__all__ = ["BY_NAME", "EVENT_TOPICS", "FLOOR_NAMES", "FLOOR_TOPICS", "INPUT_TOPICS"]
