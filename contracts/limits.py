"""Input plausibility, part of the contract: what a record may be before it can touch state.

The schema (``contracts/events.py``) bounds each field on its own. What a site-day makes
plausible is checked by the worker against these limits (``decision/admission.py``): a record
outside them is dead-lettered with its reason and never reaches the site's state. A producer
that respects them never sees a dead letter.

- A record is at most :data:`MAX_RECORD_BYTES`; larger ones are not even parsed.
- An event's ``event_time`` lies within the site's day, no more than ``event_time_skew_s``
  before the open interval (a late record) and no later than the skew after the next
  interval (the floor moving on while a restarted worker catches up); far-past and
  far-future times are implausible.
- An ``interval_closed`` names an interval of the day, with the site's own interval times,
  not one already closed; ``events_in_interval`` names floor topics with bounded counts.
- Floor records are unique: the same induction or recirculation (package, attempt), sorting
  (package), or chute event (event id) seen again in the open or the previous interval is a
  duplicate.
- A ``day_started`` record seen before (same ``event_id``, among the site's last 64 days) is a
  duplicate; any other starts a new day, also for a date seen before (a new run of it).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_RECORD_BYTES = 64 * 1024
"""A floor event is ~250 bytes and an interval close with counts under 1 KiB."""
MAX_ATTEMPT = 1_000
MAX_STATION = 100_000
MAX_INTERVAL_INDEX = 100_000
MAX_RECORDS_PER_INTERVAL = 10_000_000


class InputLimits(BaseModel):
    """The site-independent limits a worker applies; ``chuteflow worker`` flags set them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_time_skew_s: float = Field(
        default=300.0,
        ge=0,
        description="How far a floor event's time may lie outside the open interval.",
    )
    dead_letter_value_bytes: int = Field(
        default=16 * 1024,
        ge=0,
        description="Original bytes kept in a dead letter; longer values are truncated and "
        "carry their size and sha256 instead, so a dead letter never exceeds the producer's "
        "message limit.",
    )


__all__ = [
    "MAX_ATTEMPT",
    "MAX_INTERVAL_INDEX",
    "MAX_RECORDS_PER_INTERVAL",
    "MAX_RECORD_BYTES",
    "MAX_STATION",
    "InputLimits",
]
