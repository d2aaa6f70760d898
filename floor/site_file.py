"""A site file: one YAML with a site's layout, timing, twin physics and guardrails.

The format is the scenario format (``floor/scenarios/*.yaml``, :class:`~floor.scenario.Scenario`)
plus a ``guardrails:`` section (:class:`~floor.site_guardrails.SiteGuardrails`); every field is
documented in ``docs/site-format.md``. :func:`load_site_file` is the strict front door used by
``chuteflow site``: on top of what any scenario load checks (types, ranges, whole ticks and
intervals, guardrails that fit the chutes) it refuses a layout the twin could not run a
typical day on (too little induction or eject capacity for the site's own mean rate), because
a policy trained there would learn from a floor that cannot exist.

Every failure is one line naming the file and the field, e.g.
``site.yaml: guardrails.min_chutes_per_destination: guaranteed chutes exceed eject_chutes
(52 guaranteed > 40 chutes; ...)``; the CLI prints it and exits 2.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from floor.config import parse_yaml_model
from floor.errors import ChuteflowError
from floor.scenario import BUILTIN_SCENARIOS, Scenario, ScenarioError, load_scenario
from floor.site import Site, load_site

SITE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
"""A site id is a Kafka record key and a metric label: plain characters, at most 128."""


class SiteFileError(ChuteflowError):
    """A site file that cannot be used; ``str`` is ``<file>: <field>: <problem>``."""


def layout_problem(scenario: Scenario) -> str | None:
    """The first reason the twin could not run a typical day of ``scenario`` (``field:
    problem``), or ``None``. These are capacity facts, not preferences: the stations must be
    able to induct the mean rate and the chutes to eject it."""
    if not SITE_ID.match(scenario.site_id):
        return (
            f"site_id: {scenario.site_id!r} must be 1-128 letters, digits, '.', '_' or '-' "
            "(it is the Kafka record key)"
        )
    induct = scenario.induction_stations * scenario.station_packages_per_hour
    if induct < scenario.mean_packages_per_hour:
        return (
            f"induction_stations: {scenario.induction_stations} stations x "
            f"{scenario.station_packages_per_hour:g}/h = {induct:g} packages/h cannot induct "
            f"mean_packages_per_hour ({scenario.mean_packages_per_hour:g})"
        )
    eject = scenario.eject_chutes * scenario.chute_packages_per_minute * 60
    if eject < scenario.mean_packages_per_hour:
        return (
            f"eject_chutes: {scenario.eject_chutes} chutes x "
            f"{scenario.chute_packages_per_minute:g}/min = {eject:g} packages/h cannot eject "
            f"mean_packages_per_hour ({scenario.mean_packages_per_hour:g})"
        )
    return None


def load_site_file(path: str | Path) -> Site:
    """The site a site file describes (or a built-in site by name), checked in full.

    Raises:
        ScenarioError: the YAML or a field is wrong (one line: file, field, what is allowed).
        SiteFileError: the file has no guardrails, or its layout cannot run a typical day.
        GuardrailError: guardrails found beside the file do not fit it.
    """
    scenario = load_scenario(path)
    where = str(path)
    if str(path) not in BUILTIN_SCENARIOS:
        problem = layout_problem(scenario)
        if problem is not None:
            raise SiteFileError(f"{where}: {problem}")
        beside = Path(path).resolve().parent / f"guardrails-{scenario.name}.yaml"
        if scenario.guardrails is None and not beside.is_file():
            raise SiteFileError(
                f"{where}: guardrails: missing (a site file carries its guardrails section; "
                "see docs/site-format.md)"
            )
    return load_site(scenario)


def load_site_text(text: str, where: str, source_dir: Path | None = None) -> Site:
    """The site a site file's text describes (a site catalog entry's ``site_yaml``), checked as
    strictly as :func:`load_site_file` checks a file, except that the guardrails can only be
    the text's own section (there is no folder to find others in). ``source_dir``: the folder
    of the file the text is, where its groups file may lie beside it.

    Raises:
        ScenarioError: the YAML or a field is wrong (one line naming ``where`` and the field).
        SiteFileError: no guardrails section, or a layout that cannot run a typical day.
        GuardrailError: the guardrails do not fit the site.
    """
    scenario = parse_yaml_model(text, Scenario, ScenarioError, where)
    # the folder of the file the text came from: its groups beside it are the site's
    # (``floor.daytypes.site_groups_path``), as for a scenario loaded from that file
    scenario._source_dir = None if source_dir is None else source_dir.resolve()
    problem = layout_problem(scenario)
    if problem is not None:
        raise SiteFileError(f"{where}: {problem}")
    if scenario.guardrails is None:
        raise SiteFileError(
            f"{where}: guardrails: missing (a site file carries its guardrails section; "
            "see docs/site-format.md)"
        )
    return load_site(scenario)


def site_file_text(scenario: Scenario, header: str = "") -> str:
    """``scenario`` (with its guardrails section) as site-file YAML, fields in model order,
    so the same site always gives the same bytes. ``header`` becomes leading ``#`` lines."""
    data: dict[str, Any] = scenario.model_dump(mode="json", exclude_none=True)
    destinations = data.pop("destinations")
    guardrails = data.pop("guardrails", None)
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    lines.append(body.rstrip("\n"))
    lines.append(
        yaml.safe_dump({"destinations": destinations}, default_flow_style=None, width=100).rstrip(
            "\n"
        )
    )
    if guardrails is not None:
        lines.append(yaml.safe_dump({"guardrails": guardrails}, sort_keys=False).rstrip("\n"))
    return "\n".join(lines) + "\n"


def write_site_file(scenario: Scenario, path: str | Path, header: str = "") -> Path:
    """Write :func:`site_file_text` to ``path`` (parents created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(site_file_text(scenario, header))
    return out


__all__ = [
    "SiteFileError",
    "layout_problem",
    "load_site_file",
    "load_site_text",
    "site_file_text",
    "write_site_file",
]
