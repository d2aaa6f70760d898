"""Exit codes of the canary gate's watcher (``policy canary``, ``policy gate``): one per way a
watch ends, so a script can tell "the gate failed and rolled back" from "the watcher could not
continue" (kept apart from ``rollout/watcher.py`` so ``--help`` loads nothing heavy)."""

from __future__ import annotations

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_LOST = 4
EXIT_ENDED = 5
EXIT_CODES = (
    f"exit codes: {EXIT_PASSED} every canary passed and was promoted (or none was open); "
    f"{EXIT_FAILED} a gate failed and its site was rolled back; {EXIT_USAGE} bad input, or the "
    f"broker unreachable or refusing at start; {EXIT_TIMEOUT} --timeout-seconds reached with a "
    "canary still open (run `chuteflow policy gate` to keep watching); "
    f"{EXIT_LOST} the watcher could not continue (broker unreachable past "
    "--outage-limit-seconds; the canary is still open: run `chuteflow policy gate`); "
    f"{EXIT_ENDED} someone else ended the canary (promote, abort, another route)"
)
"""The exit codes in one paragraph, for ``--help``."""

__all__ = [
    "EXIT_CODES",
    "EXIT_ENDED",
    "EXIT_FAILED",
    "EXIT_LOST",
    "EXIT_PASSED",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
]
