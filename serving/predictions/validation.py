"""Turning a request body into model inputs, or into an error message that helps an honest caller."""

import numpy as np
import orjson

from serving.predictions.errors import InvalidInputError
from serving.predictions.images import image_to_input

INPUT_SIZE = 64
INPUT_MIN = 0.0
INPUT_MAX = 16.0
_NUMBER_TYPES = frozenset({int, float})
_FIELDS = frozenset({"inputs", "image"})


def _check_row(row: object, index: int) -> None:
    if not isinstance(row, list):
        raise InvalidInputError(f"inputs[{index}] must be a list of {INPUT_SIZE} numbers.")
    if len(row) != INPUT_SIZE:
        raise InvalidInputError(
            f"inputs[{index}] has {len(row)} values; each input needs {INPUT_SIZE} "
            f"(an 8x8 image, row by row, intensities {INPUT_MIN:g} to {INPUT_MAX:g})."
        )
    # JSON booleans are Python ints; only real numbers are pixel intensities.
    if not set(map(type, row)) <= _NUMBER_TYPES:
        raise InvalidInputError(f"inputs[{index}] must contain only numbers.")


def parse_predict_body(body: bytes, *, max_batch: int) -> np.ndarray:
    """The inputs of a predict request as a float64 array of shape (n, 64), 1 <= n <= max_batch.

    Accepts `{"inputs": [[64 numbers], ...]}` or `{"image": "<base64 PNG or JPEG>"}`; raises InvalidInputError."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError("The request body is not valid JSON.") from exc
    if not isinstance(payload, dict) or len(payload.keys() & _FIELDS) != 1:
        raise InvalidInputError('Send either {"inputs": [[64 numbers], ...]} or {"image": "<base64 PNG or JPEG>"}.')
    unknown = sorted(payload.keys() - _FIELDS)
    if unknown:
        raise InvalidInputError(f"Unknown field(s): {', '.join(unknown)}.")
    if "image" in payload:
        return image_to_input(payload["image"])[np.newaxis, :]
    rows = payload["inputs"]
    if not isinstance(rows, list) or not rows:
        raise InvalidInputError("inputs must be a non-empty list of inputs.")
    if len(rows) > max_batch:
        raise InvalidInputError(f"Your plan allows at most {max_batch} inputs per request; this one has {len(rows)}.")
    for index, row in enumerate(rows):
        _check_row(row, index)
    x = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(x).all():
        raise InvalidInputError("inputs must be finite numbers.")
    if x.min() < INPUT_MIN or x.max() > INPUT_MAX:
        bad = int(np.argwhere((x < INPUT_MIN) | (x > INPUT_MAX))[0][0])
        raise InvalidInputError(f"inputs[{bad}] has values outside {INPUT_MIN:g} to {INPUT_MAX:g}.")
    return x
