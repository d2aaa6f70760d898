"""The one error the local broker raises."""

from __future__ import annotations

from floor.errors import ChuteflowError


class BrokerError(ChuteflowError):
    """The local broker could not be resolved, started or stopped; the message says why."""
