"""Turning a request body into model inputs, or into an error message that helps an honest caller.

Shaped by the model's input schema (`serving.input_schema`): `{"inputs": [...]}` holds 1 to the plan's max batch
inputs, each a flat list of the schema's n values (for an image, row by row, channel last) or, for an image model,
the image as nested lists (height x width, or height x width x channels); `{"image": "<base64 PNG or JPEG>"}` is
one picture for an image model. A refusal names the input, the value (feature or pixel) and its allowed range or
shape.

The common case is checked in bulk: a body whose bytes hold no string, boolean or null beyond the field's name
becomes one numpy array at once; anything else, and any array that does not come out (n, d) and in bounds, is
walked input by input to say exactly what is wrong.
"""

import numpy as np
import orjson

from serving.input_schema import InputSchema
from serving.predictions.errors import InvalidInputError
from serving.predictions.images import image_to_input

_NUMBER_TYPES = frozenset({int, float})
_FIELDS = frozenset({"inputs", "image"})


def _usage(schema: InputSchema) -> str:
    n = schema.n_features
    if schema.is_image:
        return f'Send either {{"inputs": [[{n} numbers], ...]}} or {{"image": "<base64 PNG or JPEG>"}}.'
    return f'Send {{"inputs": [[{n} numbers], ...]}}.'


def _flat_row(row: object, index: int, schema: InputSchema) -> list:
    """One input as a flat list, or InvalidInputError saying what is wrong with its shape or contents."""
    n = schema.n_features
    if not isinstance(row, list):
        raise InvalidInputError(f"inputs[{index}] must be a list of {n} numbers.")
    if schema.is_image and row and isinstance(row[0], list):
        shape = schema.image_shape
        array = np.array(row, dtype=object)
        if array.shape != shape:
            nested = "x".join(str(s) for s in shape)
            got = "x".join(str(s) for s in array.shape) if array.ndim > 1 else "ragged"
            raise InvalidInputError(
                f"inputs[{index}] is a nested list of shape {got}; each input is {nested} "
                f"(or a flat list of {n} numbers: {schema.describe_input()})."
            )
        row = array.reshape(-1).tolist()
    if len(row) != n:
        raise InvalidInputError(
            f"inputs[{index}] has {len(row)} values; each input needs {n} ({schema.describe_input()})."
        )
    # JSON booleans are Python ints; only real numbers are inputs.
    if not set(map(type, row)) <= _NUMBER_TYPES:
        raise InvalidInputError(f"inputs[{index}] must contain only numbers.")
    return row


def _out_of_bounds_message(x: np.ndarray, schema: InputSchema) -> str:
    row, column = (int(i) for i in np.argwhere(schema.out_of_bounds(x))[0])
    if schema.is_image and schema.uniform_bounds:
        return f"inputs[{row}] has values outside {schema.value_range_text()}."
    return (
        f"inputs[{row}]: {schema.value_label(column)} is {x[row, column]:g}, outside its allowed "
        f"{schema.value_range_text(column)}."
    )


def _rows_in_bulk(body: bytes, rows: list, schema: InputSchema) -> np.ndarray | None:
    """The whole batch as one (rows, n) float array when nothing but numbers can be in it, else None."""
    # The field's name is the body's only string, and `true`, `false` and `null` cannot hide in one.
    if body.count(b'"') != 2 or b"true" in body or b"false" in body or b"null" in body:
        return None
    try:
        x = np.array(rows, dtype=np.float64)
    except (ValueError, TypeError):  # ragged, nested too deep: the walk below says where
        return None
    n = len(rows)
    if x.shape == (n, schema.n_features):
        return x
    if schema.is_image and x.shape == (n, *schema.image_shape):
        return x.reshape(n, schema.n_features)
    return None


def parse_predict_body(body: bytes, *, schema: InputSchema, max_batch: int) -> np.ndarray:
    """The inputs of a predict request as a float64 array of shape (n, schema.n_features), 1 <= n <= max_batch,
    every value within its bounds (images: on the schema's grid already). Raises InvalidInputError."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError("The request body is not valid JSON.") from exc
    if not isinstance(payload, dict) or len(payload.keys() & _FIELDS) != 1:
        raise InvalidInputError(_usage(schema))
    unknown = sorted(payload.keys() - _FIELDS)
    if unknown:
        raise InvalidInputError(f"Unknown field(s): {', '.join(unknown)}.")
    if "image" in payload:
        if not schema.is_image:
            raise InvalidInputError(f"This model takes numbers, not pictures. {_usage(schema)}")
        return image_to_input(payload["image"], schema)[np.newaxis, :]
    rows = payload["inputs"]
    if not isinstance(rows, list) or not rows:
        raise InvalidInputError("inputs must be a non-empty list of inputs.")
    if len(rows) > max_batch:
        raise InvalidInputError(f"Your plan allows at most {max_batch} inputs per request; this one has {len(rows)}.")
    x = _rows_in_bulk(body, rows, schema)
    if x is None:
        x = np.array([_flat_row(row, index, schema) for index, row in enumerate(rows)], dtype=np.float64)
    return check_values(x, schema=schema)


def check_values(x: np.ndarray, *, schema: InputSchema) -> np.ndarray:
    """`x` (n, schema.n_features) when every value is finite and within its bounds; else InvalidInputError naming
    the first input and value that is not (any protocol's rows go through here)."""
    if not np.isfinite(x).all():
        raise InvalidInputError("inputs must be finite numbers.")
    if schema.out_of_bounds(x).any():
        raise InvalidInputError(_out_of_bounds_message(x, schema))
    return x
