"""Value ensembles: several trained agent networks served as one ONNX policy.

Independently trained DQN networks estimate the same thing (the value of holding ``k`` chutes)
with independent errors; their mean is a lower-variance estimate, and the projection ranks
chute counts by it. The ensemble is one file, so it is registered, inspected, shadowed and
rolled back like any other policy, and onnxruntime evaluates every member in one call. Members
may read different feature lists: the ensemble reads their union (in the engine's order) and
hands each member its own columns, as the engine does for a single policy.

    python -m training.ensemble --out ens.onnx a.onnx b.onnx c.onnx

Next to the file it writes ``<out>.members.json``: each member's path, sha256 and, where the
member sits in a training run's folder, that run's ``settings.json``, so the ensemble can be
rebuilt from ``chuteflow train`` runs.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper

from decision.artifacts import sha256_hex
from decision.features import FEATURE_NAMES, policy_features
from training.export import IR_VERSION, OPSET

INPUT = "observations"
OUTPUT = "values"
SHARED_KEYS = ("policy_name", "scenario")
"""Metadata every member must agree on: what the ensemble serves and where."""


def _width(value_info: onnx.ValueInfoProto) -> int | None:
    dims = value_info.type.tensor_type.shape.dim
    return dims[-1].dim_value if dims and dims[-1].HasField("dim_value") else None


def _member(data: bytes, label: str) -> tuple[onnx.ModelProto, dict[str, str]]:
    try:
        model = onnx.load_from_string(data)
    except Exception as error:  # protobuf raises its own decode errors
        raise ValueError(f"{label}: not an ONNX model ({error})") from None
    graph = model.graph
    if [i.name for i in graph.input] != [INPUT] or [o.name for o in graph.output] != [OUTPUT]:
        raise ValueError(f"{label}: expected one input {INPUT!r} and one output {OUTPUT!r}")
    return model, {p.key: p.value for p in model.metadata_props}


def ensemble(members: Sequence[tuple[str, bytes]], version: str) -> onnx.ModelProto:
    """One model whose ``values`` are the mean of ``members``' values.

    Raises:
        ValueError: fewer than two members, a member that is not a policy network, or members
            that disagree on policy name, scenario or output width.
    """
    if len(members) < 2:
        raise ValueError("an ensemble needs at least two members")
    loaded = [_member(data, label) for label, data in members]
    first_model, first_meta = loaded[0]
    out_width = _width(first_model.graph.output[0])
    reads: list[tuple[str, ...]] = []
    for (label, _), (model, meta) in zip(members, loaded, strict=True):
        for key in SHARED_KEYS:
            if meta.get(key) != first_meta.get(key):
                raise ValueError(
                    f"{label}: {key} {meta.get(key)!r} differs from the first member's "
                    f"{first_meta.get(key)!r}"
                )
        width = _width(model.graph.output[0])
        if width != out_width:
            raise ValueError(f"{label}: output width {width} differs from {out_width}")
        reads.append(policy_features(meta, _width(model.graph.input[0]), label))
    union = tuple(name for name in FEATURE_NAMES if any(name in r for r in reads))
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    outputs: list[str] = []
    for index, ((model, _), names) in enumerate(zip(loaded, reads, strict=True)):
        prefix = f"m{index}/"
        if names == union:  # reads the ensemble's input as it is
            prefixed = compose.add_prefix(model, prefix, rename_inputs=False)
        else:  # its own columns of it, in its order
            prefixed = compose.add_prefix(model, prefix)
            columns = np.array([union.index(name) for name in names], dtype=np.int64)
            initializers.append(numpy_helper.from_array(columns, f"{prefix}columns"))
            gather = [INPUT, f"{prefix}columns"]
            nodes.append(helper.make_node("Gather", gather, [f"{prefix}{INPUT}"], axis=1))
        nodes.extend(prefixed.graph.node)
        initializers.extend(prefixed.graph.initializer)
        outputs.append(f"{prefix}{OUTPUT}")
    nodes.append(helper.make_node("Mean", outputs, [OUTPUT]))
    graph = helper.make_graph(
        nodes,
        "chuteflow_agent_q_ensemble",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", len(union)])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", out_width])],
        initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="chuteflow"
    )
    model.ir_version = IR_VERSION
    metadata = {key: first_meta[key] for key in SHARED_KEYS if key in first_meta}
    metadata["features"] = ",".join(union)
    metadata["policy_version"] = version
    metadata["members"] = ",".join(sha256_hex(data)[:12] for _, data in members)
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    return model


def _provenance(path: Path, data: bytes) -> dict[str, object]:
    """A member's path and hash, plus its training run's settings where they sit beside it."""
    entry: dict[str, object] = {"path": str(path), "sha256": sha256_hex(data)}
    settings = path.parent / "settings.json"
    if settings.is_file():
        entry["settings"] = json.loads(settings.read_text())
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="the ensemble's ONNX file")
    parser.add_argument("--version", default=None, help="policy_version (default: from members)")
    parser.add_argument("members", nargs="+", type=Path, help="member ONNX files")
    args = parser.parse_args(argv)
    try:
        members = [(str(path), path.read_bytes()) for path in args.members]
        digest = sha256_hex(b"".join(data for _, data in members))[:8]
        model = ensemble(members, args.version or f"ensemble{len(members)}-{digest}")
    except (OSError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(model.SerializeToString())
    provenance = [
        _provenance(path, data) for path, (_, data) in zip(args.members, members, strict=True)
    ]
    sidecar = args.out.with_suffix(".members.json")
    sidecar.write_text(json.dumps(provenance, indent=1) + "\n")
    print(f"{args.out}: mean of {len(members)} members")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
