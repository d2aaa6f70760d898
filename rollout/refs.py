"""Policy references and sites as an operator types them, resolved against Kafka."""

from __future__ import annotations

from pathlib import Path

from contracts.control import BUILTIN_SERVABLE, PolicyRef
from floor.errors import ChuteflowError
from floor.scenario import BUILTIN_SCENARIOS, Scenario, load_scenario
from stream.clients import KafkaClientConfig
from stream.policy_store import read_store, resolve


class RefError(ChuteflowError):
    """A policy or site an operator named cannot be used; one line."""


def policy_ref(client: KafkaClientConfig, text: str) -> PolicyRef:
    """``proportional``/``static`` or a store version (``NAME@VERSION``, ``sha256:HEX``) as the
    full-hash reference a route carries."""
    if text in BUILTIN_SERVABLE:
        return PolicyRef(name=text)
    if "@" not in text and not text.startswith("sha256:"):
        raise RefError(
            f"policy {text!r}: use {', '.join(BUILTIN_SERVABLE)} or a store version "
            "NAME@VERSION / sha256:HEX (chuteflow policy list)"
        )
    record = resolve(read_store(client), text)
    return PolicyRef(name=record.name, sha256=record.sha256)


def scenarios_by_site(names: list[str] | None) -> dict[str, Scenario]:
    """Scenarios the operator named (default: the built-in ones), by site id."""
    out: dict[str, Scenario] = {}
    for name in names or list(BUILTIN_SCENARIOS):
        scenario = load_scenario(Path(name) if name.endswith((".yaml", ".yml")) else name)
        out[scenario.site_id] = scenario
    return out


def scenario_of(site_id: str, names: list[str] | None) -> Scenario:
    known = scenarios_by_site(names)
    if site_id not in known:
        raise RefError(f"site {site_id!r}: not one of {', '.join(sorted(known))} (give --scenario)")
    return known[site_id]


__all__ = ["RefError", "policy_ref", "scenario_of", "scenarios_by_site"]
