"""Policy names and sites as an operator types them: one grammar for every verb.

A policy is named, on every verb (``simulate``, ``evaluate``, ``worker``, ``policy route``,
``canary``, ``shadow report --also``, ``policy show``), in one of these forms, tried in this
order:

1. a built-in: ``static``, ``proportional`` (and ``lookahead``, offline only: it reads the
   day's true arrivals);
2. a path to an ``.onnx`` file;
3. a shipped file by name: a file stem of ``decision/policies/`` (``drmarl-large``,
   ``drmarl-exhaustive-small``), or its short form without the scenario (``drmarl``,
   ``marl``, ``drmarl-exhaustive``), which means the shipped file of the verb's scenario;
4. a policy-store version: ``NAME@VERSION`` (a full sha256 or a unique prefix of at least 8
   hex digits), ``sha256:HEX``, ``NAME@latest`` (the version registered last) or an
   operator-set alias ``NAME@ALIAS`` (``chuteflow policy alias set``;
   ``stream/policy_alias.py``).

Offline verbs (``simulate``, ``evaluate``) read the store only when a broker is given
(``--bootstrap``, ``--kafka-config`` or ``$KAFKA_BOOTSTRAP_SERVERS``): they run without Kafka
otherwise. A route names store versions only (the worker fetches by hash), so a shipped file
on a route is the store version with the same bytes: register it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contracts.control import BUILTIN_SERVABLE, PolicyRef
from decision.artifacts import HASH_PREFIX, PolicyArtifact, sha256_hex
from decision.policies import BUILTIN_POLICIES
from floor.errors import ChuteflowError
from floor.scenario import BUILTIN_SCENARIOS, Scenario, load_scenario
from stream.clients import KafkaClientConfig
from stream.policy_alias import read_registry, resolve_ref
from stream.policy_store import StoredPolicy, fetch_policy

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "decision" / "policies"
"""The policies shipped with chuteflow (``decision/policies/*.onnx``)."""

FORMS = (
    "a built-in (static, proportional, lookahead), PATH.onnx, a shipped name (drmarl, "
    "drmarl-large, ...: the files of decision/policies/) or a store version NAME@VERSION, "
    "NAME@latest, NAME@ALIAS, sha256:HEX"
)
"""The grammar in one line, for ``--help`` and errors."""


class RefError(ChuteflowError):
    """A policy or site an operator named cannot be used; one line."""


@dataclass(frozen=True)
class Named:
    """What a policy name resolved to: exactly one of ``builtin``, ``path``, ``artifact``."""

    text: str
    """As the operator typed it."""
    builtin: str | None = None
    path: Path | None = None
    """A shipped file or a given ``.onnx`` path."""
    artifact: PolicyArtifact | None = None
    """A store version's bytes (hash-checked)."""

    @property
    def engine_policy(self) -> str | PolicyArtifact:
        """What :func:`decision.build.build_engine` takes."""
        if self.artifact is not None:
            return self.artifact
        if self.path is not None:
            return str(self.path)
        assert self.builtin is not None
        return self.builtin

    @property
    def kind(self) -> str:
        if self.artifact is not None:
            return "store"
        if self.path is not None:
            return "shipped" if self.path.parent == SHIPPED_DIR else "file"
        return "builtin"


def shipped(scenario_name: str | None = None) -> dict[str, Path]:
    """Shipped policy files by every name they answer to: each file's stem, and for the files
    of ``scenario_name`` (``X-<scenario>.onnx``) also the short name ``X``."""
    names: dict[str, Path] = {}
    for path in sorted(SHIPPED_DIR.glob("*.onnx")):
        names[path.stem] = path
    if scenario_name:
        for path in sorted(SHIPPED_DIR.glob(f"*-{scenario_name}.onnx")):
            names.setdefault(path.stem[: -len(scenario_name) - 1], path)
    return names


def is_store_name(text: str) -> bool:
    """Whether ``text`` has a store form (``NAME@...`` or ``sha256:HEX``)."""
    if text.lower().endswith(".onnx"):
        return False
    return text.startswith(HASH_PREFIX) or "@" in text


def store_record(client: KafkaClientConfig, text: str) -> StoredPolicy:
    """The store version ``text`` names (versions, ``@latest`` and aliases)."""
    return resolve_ref(read_registry(client), text)


def _unknown(text: str, scenario_name: str | None) -> RefError:
    names = ", ".join(sorted(shipped(scenario_name)))
    return RefError(
        f"unknown policy {text!r}: use a built-in ({', '.join(BUILTIN_POLICIES)}), PATH.onnx, "
        f"a shipped name ({names}) or a store version NAME@VERSION / NAME@latest / "
        "NAME@ALIAS / sha256:HEX"
    )


def resolve_policy(
    text: str, scenario_name: str | None = None, client: KafkaClientConfig | None = None
) -> Named:
    """Any policy name of the grammar (module docstring) as something an engine is built from.

    ``client`` is the broker of the policy store: without it a store name is a
    :class:`RefError` that says to give one.
    """
    if text in BUILTIN_POLICIES:
        return Named(text, builtin=text)
    if text.lower().endswith(".onnx"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise RefError(f"policy {text}: no such file")
        return Named(text, path=path)
    if is_store_name(text):
        if client is None:
            raise RefError(
                f"policy {text} is a policy-store version: give --bootstrap (or "
                "--kafka-config, or $KAFKA_BOOTSTRAP_SERVERS) to read the store"
            )
        record = store_record(client, text)
        artifact = fetch_policy(client, f"{record.name}@{record.sha256}")
        return Named(text, artifact=artifact)
    found = shipped(scenario_name).get(text)
    if found is not None:
        return Named(text, path=found)
    raise _unknown(text, scenario_name)


def policy_ref(client: KafkaClientConfig, text: str, scenario_name: str | None = None) -> PolicyRef:
    """A policy name as the reference a route carries: a servable built-in, or the full hash
    of a store version (a shipped name: the store version with its bytes)."""
    if text in BUILTIN_SERVABLE:
        return PolicyRef(name=text)
    if text in BUILTIN_POLICIES:
        raise RefError(f"policy {text}: reads the day's true arrivals, evaluation only")
    if is_store_name(text):
        record = store_record(client, text)
        return PolicyRef(name=record.name, sha256=record.sha256)
    path = shipped(scenario_name).get(text)
    if path is None and text.lower().endswith(".onnx"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise RefError(f"policy {text}: no such file")
    if path is None:
        raise _unknown(text, scenario_name)
    digest = sha256_hex(path.read_bytes())
    registered = read_registry(client).records.get(digest)
    if registered is None:
        raise RefError(
            f"policy {text}: a route serves store versions; register it first: chuteflow "
            f"policy register {path} --name {path.stem}"
        )
    return PolicyRef(name=registered.name, sha256=registered.sha256)


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


__all__ = [
    "FORMS",
    "SHIPPED_DIR",
    "Named",
    "RefError",
    "is_store_name",
    "policy_ref",
    "resolve_policy",
    "scenario_of",
    "scenarios_by_site",
    "shipped",
    "store_record",
]
