"""The Open Inference Protocol (KServe "V2", the REST protocol of Triton, KServe, MLServer and OpenVINO Model Server)
over Moat's models: what a model's metadata says, how an inference request's tensors become the schema's rows, and
how a defended answer becomes output tensors. Pure: the views (`api_v2`) put it on the /v1 pipeline.

A model has one input tensor, `input`, of shape [-1, n] (n: the schema's values per input; an image model also takes
[-1, height, width(, channels)]), sent as JSON `data` (flat in row-major order, or nested) or as raw little-endian
bytes after the JSON header (the binary tensor data extension, `Inference-Header-Content-Length`). Its outputs are
what the caller's tier is served, exactly as /v1 carries them: `label` (BYTES [-1]), `confidence` (FP32 [-1]) and
`probabilities` (FP32 [-1, classes]). The classification extension (`"parameters": {"classification": k}` on an
output) answers, per input, the k best of what the tier shows as `"<confidence>:<index>:<label>"` strings: the tier's
own top-k, never more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from serving.defenses import DefendedPrediction
from serving.input_schema import InputSchema
from serving.predictions.errors import InvalidInputError

INPUT_NAME = "input"
OUTPUT_LABEL, OUTPUT_CONFIDENCE, OUTPUT_PROBABILITIES = "label", "confidence", "probabilities"
EXTENSIONS = ("classification", "binary_tensor_data")
# Numbers only: an input value is a number on the schema's grid. Little-endian, as the binary extension sends them.
DATATYPES = {
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
    "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
}  # fmt: skip
_REQUEST_FIELDS = frozenset({"id", "parameters", "inputs", "outputs"})
_INPUT_FIELDS = frozenset({"name", "shape", "datatype", "parameters", "data"})
_OUTPUT_FIELDS = frozenset({"name", "parameters"})
_MAX_CLASSIFICATION = 1_000


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    classification: int = 0  # 0: the tensor itself; k > 0: its k best classes as strings


@dataclass(frozen=True)
class InferRequest:
    """An inference request, checked: `rows` (n, schema.n_features) float64 still to be checked against the
    schema's bounds, the caller's `id` (echoed), and the outputs asked for (None: every output the tier serves)."""

    rows: np.ndarray
    request_id: str | None
    outputs: tuple[RequestedOutput, ...] | None


def input_shapes(schema: InputSchema) -> list[list[int]]:
    """The shapes an input tensor may take, the batch dimension first and free (-1)."""
    shapes = [[-1, schema.n_features]]
    if schema.is_image:
        shapes.append([-1, *schema.image_shape])
    return shapes


def served_outputs(*, with_confidence: bool, with_probabilities: bool, n_classes: int) -> list[dict]:
    """The output tensors' metadata for what a tier serves."""
    outputs = [{"name": OUTPUT_LABEL, "datatype": "BYTES", "shape": [-1]}]
    if with_confidence:
        outputs.append({"name": OUTPUT_CONFIDENCE, "datatype": "FP32", "shape": [-1]})
    if with_probabilities:
        outputs.append({"name": OUTPUT_PROBABILITIES, "datatype": "FP32", "shape": [-1, n_classes]})
    return outputs


def model_metadata(*, name: str, version: str, schema: InputSchema, outputs: list[dict]) -> dict[str, object]:
    """`GET /v2/models/{name}`: the version the caller's tier is served, the input tensor and the tier's outputs."""
    return {
        "name": name,
        "versions": [version],
        "platform": "onnx",
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": input_shapes(schema)[0]}],
        "outputs": outputs,
    }


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(side) for side in shape) + "]"


def _accepted_shapes_text(schema: InputSchema) -> str:
    shapes = [_shape_text(["N", *shape[1:]]) for shape in input_shapes(schema)]
    return " or ".join(shapes)


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if not 0 <= length <= len(body):
        raise InvalidInputError(
            "Inference-Header-Content-Length must be the byte length of the JSON header at the start of the body."
        )
    return body[:length], body[length:]


def _parameters(value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where} must be an object of parameters.")
    return value


def _requested_outputs(value: object, served: Sequence[str]) -> tuple[RequestedOutput, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidInputError('"outputs" must be a non-empty list of {"name": ...} objects, or left out.')
    requested = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInputError(f'outputs[{index}] must be an object with a "name".')
        unknown = sorted(item.keys() - _OUTPUT_FIELDS)
        if unknown:
            raise InvalidInputError(f"Unknown field(s) in outputs[{index}]: {', '.join(unknown)}.")
        name = item["name"]
        if name not in served:
            raise InvalidInputError(
                f"outputs[{index}]: there is no output '{name[:64]}' for your plan; it serves {', '.join(served)}."
            )
        parameters = _parameters(item.get("parameters", {}), f"outputs[{index}].parameters")
        if not isinstance(parameters.get("binary_data", False), bool):
            raise InvalidInputError(
                f"outputs[{index}]: binary_data must be true or false (outputs are JSON either way)."
            )
        classification = parameters.get("classification", 0)
        # JSON has no integers apart: 3.0 is 3 (as JSON Schema reads it too).
        whole = isinstance(classification, int) or (isinstance(classification, float) and classification.is_integer())
        if isinstance(classification, bool) or not whole or classification < 0:
            raise InvalidInputError(f"outputs[{index}]: classification must be a whole number of classes, 0 or more.")
        requested.append(RequestedOutput(name=name, classification=int(min(classification, _MAX_CLASSIFICATION))))
    return tuple(requested)


def _tensor_values(tensor: dict, dtype: np.dtype, count: int, binary: bytes, *, may_hold_booleans: bool) -> np.ndarray:
    """The tensor's `count` values as float64, from its JSON `data` or from all of `binary`. `may_hold_booleans`: the
    JSON has a `true` or `false` somewhere, which numpy would silently read as 1 or 0 among numbers."""
    size = _parameters(tensor.get("parameters", {}), "inputs[0].parameters").get("binary_data_size")
    if size is not None:
        if "data" in tensor:
            raise InvalidInputError('inputs[0] has both "data" and binary_data_size; send one of them.')
        if isinstance(size, bool) or not isinstance(size, int) or size != count * dtype.itemsize:
            raise InvalidInputError(
                f"inputs[0]: binary_data_size must be {count * dtype.itemsize} bytes ({count} values of "
                f"{dtype.itemsize} bytes)."
            )
        if size != len(binary):
            raise InvalidInputError(
                f"inputs[0]: binary_data_size says {size} bytes; the body holds {len(binary)} after the JSON header."
            )
        return np.frombuffer(binary, dtype=dtype).astype(np.float64)
    if binary:
        raise InvalidInputError(
            "The body holds tensor bytes after the JSON header, but no input says binary_data_size."
        )
    if "data" not in tensor:
        raise InvalidInputError('inputs[0] needs "data" (or binary tensor data with binary_data_size).')
    try:
        data = np.asarray(tensor["data"])
    except ValueError as exc:  # ragged nesting
        raise InvalidInputError("inputs[0].data must be a list of numbers, flat or nested evenly.") from exc
    if data.dtype.kind not in "iuf" or data.size != count:
        if data.dtype.kind not in "iuf" and data.size:
            raise InvalidInputError("inputs[0].data must contain only numbers.")
        raise InvalidInputError(f"inputs[0].data holds {data.size} values; its shape needs {count}.")
    if may_hold_booleans and not _only_numbers(tensor["data"]):
        raise InvalidInputError("inputs[0].data must contain only numbers.")
    values = data.reshape(-1).astype(np.float64)
    if dtype.kind in "iu" and not np.array_equal(values, np.trunc(values)):
        kind = "unsigned integer" if dtype.kind == "u" else "integer"
        raise InvalidInputError(f"inputs[0] is declared {kind}; send whole numbers or declare FP32.")
    return values


def _only_numbers(data: object) -> bool:
    return set(map(type, np.asarray(data, dtype=object).ravel().tolist())) <= {int, float}


def parse_infer_request(
    body: bytes,
    *,
    header_length: str | None,
    schema: InputSchema,
    max_batch: int,
    served_output_names: Sequence[str],
) -> InferRequest:
    """An inference request's body (JSON, or the binary extension's JSON header and tensor bytes) as the schema's
    rows. Raises InvalidInputError saying what is wrong and what to send instead."""
    header, binary = _split_body(body, header_length)
    try:
        payload = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError("The request body is not valid JSON (the inference request object).") from exc
    if not isinstance(payload, dict):
        raise InvalidInputError('Send an inference request object: {"inputs": [{"name", "shape", "datatype", '
                                '"data"}]}.')  # fmt: skip
    unknown = sorted(payload.keys() - _REQUEST_FIELDS)
    if unknown:
        raise InvalidInputError(f"Unknown field(s): {', '.join(unknown)}.")
    request_id = payload.get("id")
    if "id" in payload and not isinstance(request_id, str):
        raise InvalidInputError('"id" must be a string.')
    _parameters(payload.get("parameters", {}), "parameters")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InvalidInputError(f"This model takes one input tensor, '{INPUT_NAME}' of shape "
                                f"{_accepted_shapes_text(schema)}.")  # fmt: skip
    tensor = inputs[0]
    unknown = sorted(tensor.keys() - _INPUT_FIELDS)
    if unknown:
        raise InvalidInputError(f"Unknown field(s) in inputs[0]: {', '.join(unknown)}.")
    if not isinstance(tensor.get("name"), str):
        raise InvalidInputError(f"inputs[0] needs a \"name\" (the model's input is '{INPUT_NAME}').")
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise InvalidInputError(
            f"inputs[0].datatype must be one of {', '.join(DATATYPES)} (the model takes numbers), not "
            f"{str(datatype)[:16]!r}."
        )
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(side, int) and not isinstance(side, bool) and side >= 0 for side in shape)
    ):
        raise InvalidInputError("inputs[0].shape must be a list of whole numbers, the batch size first.")
    if [-1, *shape[1:]] not in input_shapes(schema):
        raise InvalidInputError(f"inputs[0].shape is {_shape_text(shape)}; this model takes "
                                f"{_accepted_shapes_text(schema)} ({schema.describe_input()}).")  # fmt: skip
    n = shape[0]
    if n == 0:
        raise InvalidInputError("inputs[0] holds no input; send at least one.")
    if n > max_batch:
        raise InvalidInputError(f"Your plan allows at most {max_batch} inputs per request; this one has {n}.")
    dtype = np.dtype(DATATYPES[datatype])
    booleans = b"true" in header or b"false" in header
    values = _tensor_values(tensor, dtype, math.prod(shape), binary, may_hold_booleans=booleans)
    return InferRequest(
        rows=values.reshape(n, schema.n_features),
        request_id=request_id,
        outputs=_requested_outputs(payload["outputs"], served_output_names) if "outputs" in payload else None,
    )


def output_tensors(
    answers: Sequence[DefendedPrediction],
    *,
    outputs: Sequence[RequestedOutput],
    class_labels: Sequence[str],
    with_confidence: bool,
    with_probabilities: bool,
) -> list[dict]:
    """The response's output tensors for defended answers, as the tier shows them (see the module docstring)."""
    n = len(answers)
    index_of = {label: index for index, label in enumerate(class_labels)}
    tensors = []
    for output in outputs:
        if output.classification and (with_confidence or with_probabilities):
            rankings = [_classification_ranking(item, class_labels, with_probabilities) for item in answers]
            k = min(output.classification, min(len(ranking) for ranking in rankings))
            # The confidence exactly as the other outputs carry it (Python's shortest repr, never cut to 6 digits).
            data = [f"{confidence}:{index_of[label]}:{label}" for ranking in rankings for label, confidence in
                    ranking[:k]]  # fmt: skip
            tensors.append({"name": output.name, "datatype": "BYTES", "shape": [n, k], "data": data})
        elif output.name == OUTPUT_LABEL:
            tensors.append({"name": output.name, "datatype": "BYTES", "shape": [n], "data": [a.label for a in answers]})
        elif output.name == OUTPUT_CONFIDENCE:
            data = [a.confidence for a in answers]
            tensors.append({"name": output.name, "datatype": "FP32", "shape": [n], "data": data})
        else:
            data = [value for a in answers for value in (a.probabilities or [])]
            tensors.append({"name": output.name, "datatype": "FP32", "shape": [n, len(class_labels)], "data": data})
    return tensors


def _classification_ranking(
    item: DefendedPrediction, class_labels: Sequence[str], with_probabilities: bool
) -> list[tuple[str, float]]:
    if with_probabilities and item.probabilities is not None:
        order = sorted(range(len(class_labels)), key=lambda c: -item.probabilities[c])
        return [(class_labels[c], item.probabilities[c]) for c in order]
    return item.top_k or [(item.label, item.confidence)]
