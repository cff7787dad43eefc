"""Checking an uploaded ONNX graph against the model it claims to serve, before it is recorded.

The checks, each refused with a sentence that says what is wrong (never a traceback):

1. the bytes are an ONNX model that onnx's checker accepts, with no tensor stored outside the file (external data
   would make onnxruntime read other files from the server's disk) and nothing but the standard operator sets;
2. onnxruntime can build a session for it on the CPU;
3. its input: the one the operator names, or the graph's only one; a float tensor; a free batch dimension first;
   the rest matching the schema (n features; an image as height x width x channels flat, NCHW, NHWC, or height x
   width for one channel), which also tells the layout;
4. its output: the one the operator names, or its only float tensor; a sequence of maps (scikit-learn's ZipMap) is
   refused with the export option that avoids it; an embedding output, when named, exists and is a float tensor;
5. the reference data run through it give, for every input, one finite score per class; scores that are all
   non-negative and sum to 1 are probabilities, anything else logits, and a graph declared to give probabilities
   whose rows do not sum to 1 is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime

from serving.inference import (
    FLAT,
    LAYOUTS,
    LOGITS,
    NCHW,
    NHW,
    NHWC,
    OUTPUT_KINDS,
    PROBABILITIES,
    GraphBinding,
    OnnxClassifier,
    new_session,
    tensor_shape,
)
from serving.input_schema import InputSchema

_FLOAT_TYPES = ("tensor(float)", "tensor(double)")
# What "sums to 1" allows for float32 probabilities over many classes.
_PROBABILITY_TOLERANCE = 1e-3
_CHECK_BATCH = 256
_STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml"}


class GraphRejected(ValueError):
    """The graph cannot serve this model; the message says why, in a sentence for an operator."""


@dataclass(frozen=True)
class InspectedGraph:
    session: onnxruntime.InferenceSession
    input_name: str
    input_layout: str
    output_name: str
    embedding_output: str


def _all_graphs(graph: onnx.GraphProto):
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _all_graphs(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from _all_graphs(subgraph)


def _has_external_data(model: onnx.ModelProto) -> bool:
    for graph in _all_graphs(model.graph):
        tensors = list(graph.initializer) + list(graph.sparse_initializer)
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.TENSOR:
                    tensors.append(attribute.t)
                tensors.extend(attribute.tensors)
        for tensor in tensors:
            tensor = getattr(tensor, "values", tensor)  # a sparse tensor's values
            if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
                return True
    return False


def _parse(model_bytes: bytes) -> onnx.ModelProto:
    if not model_bytes:
        raise GraphRejected("The ONNX file is empty.")
    try:
        model = onnx.load_model_from_string(model_bytes)
    except Exception as exc:  # protobuf raises its own DecodeError (and others) on bytes that are not a model
        raise GraphRejected("The file is not an ONNX model (it does not parse as one).") from exc
    if not model.graph.node and not model.graph.output:
        raise GraphRejected("The file is not an ONNX model (it holds no graph).")
    if _has_external_data(model):
        raise GraphRejected(
            "The graph keeps tensors in external files; Moat accepts self-contained graphs only: save it with "
            "onnx.save_model(model, path, save_as_external_data=False)."
        )
    unknown = sorted({opset.domain for opset in model.opset_import} - _STANDARD_DOMAINS)
    if unknown:
        raise GraphRejected(
            f"The graph uses operators of the domain(s) {', '.join(unknown)}; Moat runs the standard ONNX and ONNX-ML "
            "operators only."
        )
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx.checker.ValidationError and its C++ kin
        raise GraphRejected(f"The ONNX checker refuses the graph: {_first_line(exc)}") from exc
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _dims(shape: list) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) else "?" for d in shape) + "]"


def _fits(shape: list, wanted: tuple[int, ...]) -> bool:
    """The graph's non-batch dimensions match `wanted` (a symbolic dimension matches anything)."""
    if len(shape) != len(wanted):
        return False
    return all(not isinstance(d, int) or d == w for d, w in zip(shape, wanted, strict=True))


def _layout(shape: list, schema: InputSchema, requested: str | None, name: str) -> str:
    candidates = [FLAT]
    if schema.is_image:
        candidates += [NCHW, NHWC] + ([NHW] if schema.channels == 1 else [])
    fitting = [layout for layout in candidates if _fits(shape, tensor_shape(schema, layout, 0)[1:])]
    if requested is not None:
        if requested not in LAYOUTS:
            raise GraphRejected(f"Unknown input layout '{requested}'; use one of {', '.join(LAYOUTS)}.")
        if requested not in fitting:
            raise GraphRejected(
                f"The graph's input '{name}' has shape {_dims(['N', *shape])}, which is not the {requested} layout "
                f"of the schema's input ({_dims(['N', *tensor_shape(schema, requested, 0)[1:]])})."
            )
        return requested
    if not fitting:
        wanted = " or ".join(_dims(["N", *tensor_shape(schema, layout, 0)[1:]]) for layout in candidates)
        raise GraphRejected(
            f"The graph's input '{name}' has shape {_dims(['N', *shape])}; the schema's input needs {wanted}."
        )
    if len(fitting) > 1:
        raise GraphRejected(
            f"The graph's input '{name}' fits several layouts ({', '.join(fitting)}); say which with the input layout."
        )
    return fitting[0]


def inspect_graph(
    model_bytes: bytes,
    schema: InputSchema,
    *,
    input_name: str | None = None,
    input_layout: str | None = None,
    output_name: str | None = None,
    embedding_output: str | None = None,
) -> InspectedGraph:
    """Checks 1 to 4 of the module docstring; returns the session and the binding's names and layout."""
    _parse(model_bytes)
    try:
        session = new_session(model_bytes)
    except Exception as exc:  # onnxruntime raises its own exception types for graphs it cannot run
        raise GraphRejected(f"onnxruntime cannot run the graph: {_first_line(exc)}") from exc
    inputs = {i.name: i for i in session.get_inputs()}
    if input_name and input_name not in inputs:
        raise GraphRejected(f"The graph has no input '{input_name}'; its inputs are {', '.join(inputs)}.")
    if len(inputs) != 1:
        raise GraphRejected(f"The graph has {len(inputs)} inputs ({', '.join(inputs)}); Moat feeds exactly one tensor.")
    chosen = next(iter(inputs.values()))
    if chosen.type not in _FLOAT_TYPES:
        raise GraphRejected(f"The graph's input '{chosen.name}' is {chosen.type}; Moat feeds float32 or float64.")
    shape = list(chosen.shape)
    if not shape or isinstance(shape[0], int):
        raise GraphRejected(
            f"The graph's input '{chosen.name}' has shape {_dims(shape)}: its first dimension must be a free batch "
            "dimension (export with a dynamic batch axis, e.g. torch.onnx.export(..., dynamic_axes={'input': {0: "
            "'batch'}}) or skl2onnx's initial_types=[('input', FloatTensorType([None, n]))])."
        )
    layout = _layout(shape[1:], schema, input_layout, chosen.name)

    outputs = {o.name: o for o in session.get_outputs()}
    if output_name:
        if output_name not in outputs:
            raise GraphRejected(f"The graph has no output '{output_name}'; its outputs are {', '.join(outputs)}.")
        scores = outputs[output_name]
    else:
        floats = [o for o in outputs.values() if o.type in _FLOAT_TYPES]
        if len(floats) != 1:
            maps = [o.name for o in outputs.values() if o.type.startswith("seq(map")]
            if maps and not floats:
                raise GraphRejected(_zipmap_message(maps[0]))
            raise GraphRejected(
                f"The graph has {len(floats)} float outputs ({', '.join(o.name for o in floats) or 'none'}); name "
                "the one that holds the class probabilities or logits."
            )
        scores = floats[0]
    if scores.type.startswith("seq(map"):
        raise GraphRejected(_zipmap_message(scores.name))
    if scores.type not in _FLOAT_TYPES:
        raise GraphRejected(f"The graph's output '{scores.name}' is {scores.type}; class scores must be floats.")
    embedding = ""
    if embedding_output:
        if embedding_output not in outputs:
            raise GraphRejected(
                f"The graph has no output '{embedding_output}' to use as the embedding; its outputs are "
                f"{', '.join(outputs)}."
            )
        if outputs[embedding_output].type not in _FLOAT_TYPES:
            raise GraphRejected(f"The embedding output '{embedding_output}' must be a float tensor.")
        embedding = embedding_output
    return InspectedGraph(
        session=session,
        input_name=chosen.name,
        input_layout=layout,
        output_name=scores.name,
        embedding_output=embedding,
    )


def _zipmap_message(name: str) -> str:
    return (
        f"The graph's output '{name}' is a sequence of maps (scikit-learn's ZipMap); export the probabilities as a "
        "tensor: skl2onnx.to_onnx(model, ..., options={'zipmap': False})."
    )


def check_answers(
    inspected: InspectedGraph,
    schema: InputSchema,
    reference_values: np.ndarray,
    *,
    n_classes: int,
    output_kind: str | None = None,
) -> GraphBinding:
    """Check 5: run the reference data through the graph; returns the full binding (the output kind found, or the
    one declared once it is consistent). Raises GraphRejected."""
    if output_kind is not None and output_kind not in OUTPUT_KINDS:
        raise GraphRejected(f"Unknown output kind '{output_kind}'; use logits or probabilities.")
    binding = GraphBinding(
        input_name=inspected.input_name,
        input_layout=inspected.input_layout,
        output_name=inspected.output_name,
        output_kind=LOGITS,
        embedding_output=inspected.embedding_output,
    )
    classifier = OnnxClassifier(inspected.session, binding, schema)
    names = [binding.output_name] + ([binding.embedding_output] if binding.embedding_output else [])
    scores_parts = []
    for start in range(0, reference_values.shape[0], _CHECK_BATCH):
        batch = reference_values[start : start + _CHECK_BATCH]
        try:
            outputs = classifier.raw_outputs(batch, names)
        except Exception as exc:  # onnxruntime's own errors: shapes the graph cannot take, and the like
            raise GraphRejected(f"The graph fails on the reference data: {_first_line(exc)}") from exc
        scores = np.asarray(outputs[0])
        if scores.ndim < 1 or scores.shape[0] != batch.shape[0] or scores.size != batch.shape[0] * n_classes:
            per_input = scores.size // max(batch.shape[0], 1)
            raise GraphRejected(
                f"The graph's output '{binding.output_name}' has shape {list(scores.shape)} for {batch.shape[0]} "
                f"inputs: {per_input} values per input, but the model has {n_classes} classes."
            )
        scores = scores.reshape(batch.shape[0], n_classes).astype(np.float64)
        bad = ~np.isfinite(scores).all(axis=1)
        if bad.any():
            raise GraphRejected(
                f"The graph answers NaN or infinity for reference row {start + int(np.flatnonzero(bad)[0])}."
            )
        if binding.embedding_output:
            embedding = np.asarray(outputs[1])
            if embedding.shape[0] != batch.shape[0] or not np.isfinite(embedding).all():
                raise GraphRejected(
                    f"The embedding output '{binding.embedding_output}' is not one finite row per input."
                )
        scores_parts.append(scores)
    scores = np.concatenate(scores_parts)
    sums = scores.sum(axis=1)
    are_probabilities = bool((scores >= 0).all() and np.all(np.abs(sums - 1.0) <= _PROBABILITY_TOLERANCE))
    if output_kind == PROBABILITIES and not are_probabilities:
        raise GraphRejected(
            f"The graph's output '{binding.output_name}' was declared to hold probabilities, but its rows sum to "
            f"{sums.min():.4g}..{sums.max():.4g} (and must be non-negative and sum to 1); if it holds logits, say so."
        )
    kind = output_kind or (PROBABILITIES if are_probabilities else LOGITS)
    return GraphBinding(
        input_name=binding.input_name,
        input_layout=binding.input_layout,
        output_name=binding.output_name,
        output_kind=kind,
        embedding_output=binding.embedding_output,
    )
