"""JSON Schema for every event, for WCS integrators who do not read Python."""

from __future__ import annotations

import json
from pathlib import Path

from contracts.events import EVENT_TYPES


def export_schemas(directory: Path) -> list[Path]:
    """Write ``<event_type>.v<version>.schema.json`` per event; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, model in EVENT_TYPES.items():
        version = model.model_fields["schema_version"].default
        schema = model.model_json_schema()
        schema["$id"] = f"urn:chuteflow:{event_type}:v{version}"
        path = directory / f"{event_type}.v{version}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
