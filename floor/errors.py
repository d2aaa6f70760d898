"""The one error family the CLI turns into a one-line message and exit code 2."""


class ChuteflowError(Exception):
    """A user-facing error: bad input file, unusable scenario or guardrails; no traceback."""
