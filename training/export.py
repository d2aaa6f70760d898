"""Export a trained agent network to ONNX, the artifact that is evaluated and served.

The graph is plain MatMul/Add/Relu with a dynamic batch axis (one row per destination), so
any onnxruntime can run it. Metadata carries what the serving side checks: policy name and
version, the feature names it was trained on and the scenario.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from training.mlp import MLP

OPSET = 17
IR_VERSION = 8
"""IR 8 / opset 17: read by every onnxruntime release of the last three years."""


def to_onnx(net: MLP, metadata: dict[str, str]) -> onnx.ModelProto:
    """The network as an ONNX model: input ``observations [N, F]``, output ``values [N, K]``."""
    nodes = []
    initializers = []
    current = "observations"
    last = len(net.weights) - 1
    for index, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        w_name, b_name = f"W{index}", f"b{index}"
        initializers.append(numpy_helper.from_array(w.astype(np.float32), w_name))
        initializers.append(numpy_helper.from_array(b.astype(np.float32), b_name))
        matmul, added = f"h{index}_mm", ("values" if index == last else f"h{index}_pre")
        nodes.append(helper.make_node("MatMul", [current, w_name], [matmul]))
        nodes.append(helper.make_node("Add", [matmul, b_name], [added]))
        if index < last:
            relu = f"h{index}"
            nodes.append(helper.make_node("Relu", [added], [relu]))
            current = relu
    graph = helper.make_graph(
        nodes,
        "chuteflow_agent_q",
        [helper.make_tensor_value_info("observations", TensorProto.FLOAT, ["N", net.sizes[0]])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["N", net.sizes[-1]])],
        initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="chuteflow"
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    return model


def save_onnx(net: MLP, path: Path, metadata: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_onnx(net, metadata).SerializeToString())
    return path
