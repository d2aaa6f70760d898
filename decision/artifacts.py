"""Policy artifacts: an ONNX policy's bytes, their content hash and the checks that decide
whether a file can be registered in the policy store and served.

Pure: no Kafka here (the store itself is ``stream/policy_store.py``). A policy's version in
the store is the sha256 of its ONNX bytes, so a version names exactly one network; whoever
loads one checks the hash of the bytes it got against the version it asked for
(:class:`PolicyArtifact`).

:func:`inspect_artifact` is the check before registering: the file loads with onnxruntime,
takes ``[N, F]`` observations of features the engine computes (its metadata's ``features``,
or all of :data:`~decision.features.FEATURE_NAMES` for a file that lists none), and gives
``max_chutes_per_destination + 1`` values for every scenario it is declared compatible with;
it records those scenarios and the version of each one's guardrail set.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from decision.features import policy_features
from floor.errors import ChuteflowError

MAX_ARTIFACT_BYTES = 700 * 1024
"""Larger artifacts are refused: a store record carries the artifact (base64) in one Kafka
message, and Kafka's default largest message is 1 MB. The shipped MLPs are 20-25 KB."""
MAX_ONNX_METADATA_BYTES = 16 * 1024
"""The ONNX metadata map is copied into the store record; a map larger than this is refused."""
HASH_PREFIX = "sha256:"
MIN_PREFIX_CHARS = 8
"""A version may be given as a hash prefix of at least this many hex digits."""
SERVED_VERSION_CHARS = 16
"""A store-served policy's ``version`` on allocations and decision ids: this many hex digits of
its sha256 (a prefix ``chuteflow policy show NAME@VERSION`` accepts)."""
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX = re.compile(r"[0-9a-f]+")


class ArtifactError(ChuteflowError):
    """A policy artifact that cannot be registered or served; one line, exit code 2."""


def sha256_hex(data: bytes) -> str:
    """The content hash of an artifact: lower-case hex sha256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


def version_key(sha256: str) -> str:
    """The store's key of a version: ``sha256:<hex>``."""
    return HASH_PREFIX + sha256


def check_name(name: str) -> str:
    """A policy name: letters, digits, ``.``, ``_``, ``-`` (no ``@``), at most 64 characters."""
    if not NAME_PATTERN.fullmatch(name):
        raise ArtifactError(
            f"policy name {name!r}: use letters, digits, '.', '_' or '-' (at most 64, no '@')"
        )
    return name


def check_hex(text: str, what: str) -> str:
    """A full sha256 or a prefix of at least :data:`MIN_PREFIX_CHARS` hex digits, lower-cased."""
    value = text.lower()
    if value.startswith(HASH_PREFIX):
        value = value[len(HASH_PREFIX) :]
    if not _HEX.fullmatch(value) or not MIN_PREFIX_CHARS <= len(value) <= 64:
        raise ArtifactError(
            f"{what} {text!r}: expected a sha256 in hex, or a prefix of at least "
            f"{MIN_PREFIX_CHARS} hex digits"
        )
    return value


@dataclass(frozen=True)
class ArtifactCheck:
    """What :func:`inspect_artifact` found: everything the store records about the bytes."""

    sha256: str
    size: int
    features: tuple[str, ...]
    scenarios: tuple[str, ...]
    guardrail_versions: dict[str, str]
    onnx_metadata: dict[str, str]


@dataclass(frozen=True)
class PolicyArtifact:
    """ONNX bytes whose sha256 equals :attr:`sha256`: made only for bytes that hash to it.

    ``scenarios`` are the scenarios the store records as compatible (``build_engine`` refuses
    any other site); empty means unchecked.
    """

    name: str
    sha256: str
    data: bytes = field(repr=False)
    scenarios: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        actual = sha256_hex(self.data)
        if actual != self.sha256:
            raise ArtifactError(
                f"policy {self.name}: the artifact's bytes hash to sha256:{actual}, not the "
                f"requested sha256:{self.sha256}; refusing it"
            )

    @property
    def version(self) -> str:
        """The version a served policy reports: the first :data:`SERVED_VERSION_CHARS` hex
        digits of its sha256."""
        return self.sha256[:SERVED_VERSION_CHARS]


def _session(data: bytes, label: str) -> Any:
    import onnxruntime as ort  # only artifact checks and ONNX policies load the runtime

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types, not one base
        first = " ".join(str(error).split())[:200]
        raise ArtifactError(f"{label}: does not load with onnxruntime ({first})") from None


def inspect_artifact(
    data: bytes, scenarios: Sequence[str] | None = None, label: str = "policy artifact"
) -> ArtifactCheck:
    """Check ``data`` as an ONNX policy for ``scenarios`` (default: its metadata's
    ``scenario``) and return what the store records.

    Raises:
        ArtifactError: too large, does not load, wrong feature schema or output width, no
            scenario given or declared.
        ScenarioError, GuardrailError: an unknown scenario, or one whose guardrails do not
            load.
    """
    from floor.site import load_site

    if len(data) > MAX_ARTIFACT_BYTES:
        raise ArtifactError(
            f"{label}: {len(data)} bytes; the policy store takes artifacts up to "
            f"{MAX_ARTIFACT_BYTES} bytes (one Kafka message)"
        )
    session = _session(data, label)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ArtifactError(f"{label}: expected one input [N, features], found {len(inputs)}")
    meta: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)
    if len(json.dumps(meta)) > MAX_ONNX_METADATA_BYTES:
        raise ArtifactError(
            f"{label}: ONNX metadata map over {MAX_ONNX_METADATA_BYTES} bytes; the store copies "
            "it into the record"
        )
    width = inputs[0].shape[-1] if inputs[0].shape else None
    try:
        features = policy_features(meta, width, label)
    except ValueError as exc:
        raise ArtifactError(str(exc)) from None
    if not isinstance(width, int):
        raise ArtifactError(f"{label}: input width {width!r} is not a fixed number")
    outputs = session.get_outputs()
    out_width = outputs[0].shape[-1] if outputs and outputs[0].shape else None
    if not isinstance(out_width, int):
        raise ArtifactError(f"{label}: output width {out_width!r} is not a fixed number")

    names = list(scenarios or [])
    if not names and meta.get("scenario"):
        names = [meta["scenario"]]
    if not names:
        raise ArtifactError(
            f"{label}: no compatible scenario: its ONNX metadata names none, give --scenario"
        )
    compatible: list[str] = []
    guardrails: dict[str, str] = {}
    for scenario_name in names:
        site = load_site(scenario_name)
        levels = site.physics.max_chutes_per_destination + 1
        if out_width != levels:
            raise ArtifactError(
                f"{label}: output width {out_width} != {levels} chute counts "
                f"(0..{levels - 1}) of scenario {site.scenario.name}"
            )
        if site.scenario.name not in compatible:
            compatible.append(site.scenario.name)
            guardrails[site.scenario.name] = site.guardrails.version
    return ArtifactCheck(
        sha256=sha256_hex(data),
        size=len(data),
        features=features,
        scenarios=tuple(compatible),
        guardrail_versions=guardrails,
        onnx_metadata=meta,
    )


__all__ = [
    "HASH_PREFIX",
    "MAX_ARTIFACT_BYTES",
    "MIN_PREFIX_CHARS",
    "SERVED_VERSION_CHARS",
    "ArtifactCheck",
    "ArtifactError",
    "PolicyArtifact",
    "check_hex",
    "check_name",
    "inspect_artifact",
    "sha256_hex",
    "version_key",
]
