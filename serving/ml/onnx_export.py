"""Moat's own MLPs as ONNX graphs, so that they are served through the same runtime as an operator's models.

The graph computes what `serving.ml.mlp.forward_logits` computes, in float32:

    x [N, d] -> (coarsen: Clip to the bounds, scale to grid units, Round, back to 0..1 | scale onto 0..1)
             -> Gemm, Relu, ..., Gemm -> logits [N, classes]

and also outputs the last hidden layer as `embedding` (for abuse detection's model-space distances). The input is
named `x`, the outputs `logits` and `embedding` (`GRAPH_BINDING`). ONNX's Round is round-half-to-even like numpy's,
so a coarsened model maps every input to the same level in both. The bytes depend on the weights alone (no
producer version or timestamp), so the same model always has the same sha256.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from serving.inference import FLAT, LOGITS, GraphBinding
from serving.ml.mlp import MLPWeights

INPUT_NAME = "x"
LOGITS_NAME = "logits"
EMBEDDING_NAME = "embedding"
OPSET = 17
GRAPH_BINDING = GraphBinding(
    input_name=INPUT_NAME,
    input_layout=FLAT,
    output_name=LOGITS_NAME,
    output_kind=LOGITS,
    embedding_output=EMBEDDING_NAME,
)


def _constant(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name)


def mlp_to_onnx(weights: MLPWeights, *, name: str = "moat_mlp") -> bytes:
    """The serialised ONNX graph of `weights` (opset 17, float32, a free batch dimension)."""
    low = weights.input_low
    span = weights.input_high - low
    initializers: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    if weights.input_levels is not None:
        steps = weights.input_levels - 1
        initializers += [
            _constant("input_low", low),
            _constant("input_high", weights.input_high),
            _constant("grid_units", steps / span),
            _constant("unit_scale", np.full(low.shape, 1.0 / steps)),
        ]
        nodes += [
            helper.make_node("Max", [INPUT_NAME, "input_low"], ["above_low"]),
            helper.make_node("Min", ["above_low", "input_high"], ["clipped"]),
            helper.make_node("Sub", ["clipped", "input_low"], ["shifted"]),
            helper.make_node("Mul", ["shifted", "grid_units"], ["in_grid_units"]),
            helper.make_node("Round", ["in_grid_units"], ["level"]),
            helper.make_node("Mul", ["level", "unit_scale"], ["h0"]),
        ]
    else:
        initializers += [_constant("input_low", low), _constant("input_scale", 1.0 / span)]
        nodes += [
            helper.make_node("Sub", [INPUT_NAME, "input_low"], ["shifted"]),
            helper.make_node("Mul", ["shifted", "input_scale"], ["h0"]),
        ]
    previous = "h0"
    last = len(weights.weights) - 1
    for i, (w, b) in enumerate(zip(weights.weights, weights.biases, strict=True)):
        initializers += [_constant(f"W{i}", w), _constant(f"b{i}", b)]
        output = LOGITS_NAME if i == last else f"z{i}"
        nodes.append(helper.make_node("Gemm", [previous, f"W{i}", f"b{i}"], [output]))
        if i < last:
            nodes.append(helper.make_node("Relu", [output], [f"h{i + 1}"]))
            previous = f"h{i + 1}"
    outputs = [helper.make_tensor_value_info(LOGITS_NAME, TensorProto.FLOAT, ["N", weights.n_outputs])]
    if last > 0:
        nodes.append(helper.make_node("Identity", [previous], [EMBEDDING_NAME]))
        outputs.append(helper.make_tensor_value_info(EMBEDDING_NAME, TensorProto.FLOAT, ["N", weights.hidden[-1]]))
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", weights.n_inputs])],
        outputs,
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="moat")
    model.ir_version = 8  # what onnxruntime 1.15 and newer read; opset 17 needs IR 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def binding_for(weights: MLPWeights) -> GraphBinding:
    """The binding of an exported graph: an MLP with no hidden layer has no embedding output."""
    if weights.hidden:
        return GRAPH_BINDING
    return GraphBinding(input_name=INPUT_NAME, input_layout=FLAT, output_name=LOGITS_NAME, output_kind=LOGITS)
