"""Policy artifacts without Kafka: hashing, the checks before registering, serving from bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from decision.artifacts import (
    MAX_ARTIFACT_BYTES,
    ArtifactError,
    PolicyArtifact,
    check_hex,
    inspect_artifact,
    sha256_hex,
    version_key,
)
from decision.build import PolicyError, build_engine
from decision.features import FEATURE_NAMES, FEATURE_SETS, N_FEATURES
from floor.errors import ChuteflowError
from floor.guardrails import load_guardrails
from floor.site import load_site

SHIPPED = Path(__file__).resolve().parents[2] / "decision" / "policies" / "drmarl-small.onnx"


def onnx_model(inputs: int, outputs: int, metadata: dict[str, str] | None = None) -> bytes:
    """A one-MatMul model ``[N, inputs] -> [N, outputs]`` made with onnx's helper API."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((inputs, outputs), dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["observations", "W"], ["values"])],
        "test",
        [helper.make_tensor_value_info("observations", TensorProto.FLOAT, ["N", inputs])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["N", outputs])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, metadata or {})
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def test_version_is_the_sha256_of_the_bytes() -> None:
    data = SHIPPED.read_bytes()
    import hashlib

    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
    assert version_key("ab" * 32) == "sha256:" + "ab" * 32
    assert check_hex("sha256:ABCDEF0123", "v") == "abcdef0123"
    for bad in ("abc", "xyz12345", "a" * 65):
        with pytest.raises(ArtifactError):
            check_hex(bad, "v")


def test_a_shipped_policy_passes_and_records_scenario_and_guardrails() -> None:
    data = SHIPPED.read_bytes()
    check = inspect_artifact(data)
    assert check.sha256 == sha256_hex(data)
    assert check.size == len(data)
    assert check.scenarios == ("small",)
    assert check.guardrail_versions == {"small": load_guardrails("small").version}
    assert check.features == tuple(check.onnx_metadata["features"].split(","))
    assert check.features in FEATURE_SETS.values()
    assert check.onnx_metadata["policy_name"] == "drmarl"


def test_a_policy_reads_exactly_the_features_its_file_lists() -> None:
    """A file trained before a feature existed keeps working: the engine computes every
    feature and the policy is fed its own columns, by name, in its own order."""
    from decision.policies import OnnxPolicy
    from decision.state import SiteState

    listed = ("time_of_day", "plan_trust")
    data = onnx_model(len(listed), 5, {"scenario": "small", "features": ",".join(listed)})
    assert inspect_artifact(data).features == listed
    policy = OnnxPolicy(data, 5)
    state = SiteState(
        interval_index=3,
        n_intervals=12,
        chute_owner=np.full(4, -1),
        chute_available=np.ones(4, dtype=bool),
        chute_open=np.ones(4, dtype=bool),
        arrivals=np.zeros((3, 2), dtype=np.int64),
        recirculated=np.zeros(2, dtype=np.int64),
        backlog=np.zeros(2, dtype=np.int64),
        expected_share=np.full(2, 0.5),
        plan_trust=0.25,
    )
    obs = np.arange(2 * N_FEATURES, dtype=np.float32).reshape(2, N_FEATURES)
    cols = [FEATURE_NAMES.index(name) for name in listed]
    np.testing.assert_allclose(
        policy.values(state, obs), np.repeat(obs[:, cols].sum(1), 5).reshape(2, 5)
    )


@pytest.mark.parametrize(
    ("data", "scenarios", "message"),
    [
        (onnx_model(N_FEATURES + 3, 5, {"scenario": "small"}), None, "input width"),
        (
            onnx_model(N_FEATURES, 5, {"scenario": "small", "features": "a,b,c"}),
            None,
            "trained on features",
        ),
        (
            onnx_model(3, 5, {"scenario": "small", "features": "plan_trust"}),
            None,
            "input width 3 != 1 features",
        ),
        (onnx_model(N_FEATURES, 7, {"scenario": "small"}), None, "output width 7 != 5"),
        (SHIPPED.read_bytes(), ["large"], "output width 5 != 13"),
        (onnx_model(N_FEATURES, 5), None, "no compatible scenario"),
        (b"not an onnx model", ["small"], "does not load"),
        (b"\0" * (MAX_ARTIFACT_BYTES + 1), ["small"], "artifacts up to"),
    ],
)
def test_wrong_artifacts_are_one_line_errors(
    data: bytes, scenarios: list[str] | None, message: str
) -> None:
    with pytest.raises(ArtifactError, match=message) as caught:
        inspect_artifact(data, scenarios, label="x.onnx")
    assert "\n" not in str(caught.value)


def test_unknown_scenario_is_a_chuteflow_error() -> None:
    with pytest.raises(ChuteflowError, match="nowhere"):
        inspect_artifact(SHIPPED.read_bytes(), ["nowhere"])


def test_an_artifact_is_made_only_for_bytes_that_match_its_hash() -> None:
    data = SHIPPED.read_bytes()
    with pytest.raises(ArtifactError, match="refusing"):
        PolicyArtifact("drmarl", sha256_hex(data), data + b"\0")


def test_build_engine_serves_an_artifact_under_its_store_name_and_hash() -> None:
    data = SHIPPED.read_bytes()
    artifact = PolicyArtifact("drmarl-small", sha256_hex(data), data, ("small",))
    engine = build_engine(load_site("small"), artifact)
    assert engine.policy.name == "drmarl-small"
    assert engine.policy.version == sha256_hex(data)[:16]
    with pytest.raises(PolicyError, match="registered for scenario"):
        build_engine(load_site("large"), artifact)
