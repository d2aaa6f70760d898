"""Loading versioned YAML configuration (scenarios, guardrail sets) with one-line errors."""

from __future__ import annotations

import difflib
import typing
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
        raise error(f"{where}: {_one_line(problem, model)}") from None


def _one_line(problem: ValidationError, model: type[BaseModel]) -> str:
    """A validation failure as one line: the first problem, a misspelled field first.

    Why: a renamed field (``tick_second:`` for ``tick_seconds:``) fails twice, as a missing
    field and as an unknown one, and pydantic lists the missing one first: "tick_seconds: Field
    required" sends a user looking for a field that is right there. An unknown field next to a
    field the model has under a close name is the one reported, with that name; how many more
    problems there are closes the line, so fixing one does not look like the last."""
    errors = problem.errors()
    first = errors[0]
    suggestion = ""
    for each in errors:
        if each["type"] != "extra_forbidden" or not each["loc"]:
            continue
        *parent, name = (str(part) for part in each["loc"])
        close = difflib.get_close_matches(name, _fields_at(model, parent), n=1, cutoff=0.75)
        if close:
            first, suggestion = each, f" (did you mean {close[0]}?)"
            break
    field = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ") + suggestion
    # A whole-model check has no location: its message starts with the field it names.
    line = f"{field}: {message}" if field else message
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return line


def _fields_at(model: type[BaseModel], path: Sequence[str]) -> list[str]:
    """The field names of the (nested) model at ``path``; none where the path leaves models."""
    for part in path:
        info = model.model_fields.get(part)
        inner = getattr(info, "annotation", None)
        candidates = [inner, *typing.get_args(inner)]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return list(model.model_fields)
