"""Loading versioned YAML configuration (scenarios, guardrail sets) with one-line errors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from floor.errors import ChuteflowError

Model = TypeVar("Model", bound=BaseModel)


def load_yaml_model(
    name_or_path: str | Path,
    model: type[Model],
    builtin_dir: Path,
    builtins: Sequence[str],
    error: type[ChuteflowError],
    kind: str,
) -> Model:
    """A built-in config by name or a YAML file by path, validated into ``model``.

    Every failure (missing file, bad YAML, wrong field) raises ``error`` with one line naming
    the file and, where there is one, the field: the CLI prints it as it is.
    """
    path = Path(name_or_path)
    if str(name_or_path) in builtins:
        path = builtin_dir / f"{name_or_path}.yaml"
    if not path.is_file():
        raise error(f"{name_or_path}: no such {kind} (built-in: {', '.join(builtins)})")
    return parse_yaml_model(path.read_text(), model, error, str(path))


def parse_yaml_model(
    text: str, model: type[Model], error: type[ChuteflowError], where: str
) -> Model:
    """YAML ``text`` validated into ``model``; failures as :func:`load_yaml_model`'s, naming
    ``where`` (a file, or a catalog entry: ``stream/site_catalog.py``)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as problem:
        first_line = str(problem).splitlines()[0] if str(problem) else "parse error"
        raise error(f"{where}: not valid YAML: {first_line}") from None
    if not isinstance(raw, dict):
        raise error(f"{where}: expected a mapping at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as problem:
        first = problem.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        # A whole-model check has no location: its message starts with the field it names.
        raise error(f"{where}: {field}: {message}" if field else f"{where}: {message}") from None
