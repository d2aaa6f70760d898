"""JSON Schema files for every message type on every topic, for integrators who do not read
Python (``chuteflow contracts export``)."""

from __future__ import annotations

import json
from pathlib import Path

from contracts.catalog import json_schema, published_messages


def export_schemas(directory: Path) -> list[Path]:
    """Write ``<name>.v<version>.schema.json`` per message type of every topic; returns the
    paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for message in published_messages():
        path = directory / message.file_name
        path.write_text(json.dumps(json_schema(message), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
