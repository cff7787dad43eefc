import numpy as np
import orjson
import pytest

from serving.predictions.errors import InvalidInputError
from serving.predictions.validation import parse_predict_body

ROW = [float(i % 17) for i in range(64)]


def body(payload: object) -> bytes:
    return orjson.dumps(payload)


def test_a_batch_becomes_a_float_array_in_request_order():
    x = parse_predict_body(body({"inputs": [ROW, [0] * 64, [16] * 64]}), max_batch=10)
    assert x.shape == (3, 64) and x.dtype == np.float64
    assert x[0].tolist() == ROW and x[1].sum() == 0 and x[2].sum() == 16 * 64


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "The request body is not valid JSON."),
        (b"[1, 2]", 'Send either {"inputs": [[64 numbers], ...]} or {"image": "<base64 PNG or JPEG>"}.'),
        (body({}), 'Send either {"inputs": [[64 numbers], ...]} or {"image": "<base64 PNG or JPEG>"}.'),
        (
            body({"inputs": [ROW], "image": "x"}),
            'Send either {"inputs": [[64 numbers], ...]} or {"image": "<base64 PNG or JPEG>"}.',
        ),
        (body({"inputs": [ROW], "extra": 1}), "Unknown field(s): extra."),
        (body({"inputs": []}), "inputs must be a non-empty list of inputs."),
        (body({"inputs": "1,2,3"}), "inputs must be a non-empty list of inputs."),
        (
            body({"inputs": [ROW[:63]]}),
            "inputs[0] has 63 values; each input needs 64 (an 8x8 image, row by row, intensities 0 to 16).",
        ),
        (
            body({"inputs": [ROW, [*ROW, 1]]}),
            "inputs[1] has 65 values; each input needs 64 (an 8x8 image, row by row, intensities 0 to 16).",
        ),
        (body({"inputs": [5]}), "inputs[0] must be a list of 64 numbers."),
        (body({"inputs": [[*ROW[:63], "7"]]}), "inputs[0] must contain only numbers."),
        (body({"inputs": [[*ROW[:63], True]]}), "inputs[0] must contain only numbers."),
        (body({"inputs": [[*ROW[:63], None]]}), "inputs[0] must contain only numbers."),
        (body({"inputs": [ROW, [*ROW[:63], 16.5]]}), "inputs[1] has values outside 0 to 16."),
        (body({"inputs": [[*ROW[:63], -1]]}), "inputs[0] has values outside 0 to 16."),
        (b'{"inputs": [[' + b"1e400," * 63 + b"1]]}", "The request body is not valid JSON."),
        (b'{"inputs": [[' + b"NaN," * 63 + b"1]]}", "The request body is not valid JSON."),
    ],
)
def test_bad_bodies_are_refused_with_a_message_that_says_what_to_fix(raw, message):
    with pytest.raises(InvalidInputError) as raised:
        parse_predict_body(raw, max_batch=10)
    assert raised.value.message == message
    assert raised.value.status == 400 and raised.value.code == "invalid_input"


def test_a_batch_over_the_plans_limit_is_refused_whole():
    with pytest.raises(InvalidInputError) as raised:
        parse_predict_body(body({"inputs": [ROW] * 11}), max_batch=10)
    assert raised.value.message == "Your plan allows at most 10 inputs per request; this one has 11."


def test_huge_integers_are_out_of_range_not_a_crash():
    with pytest.raises(InvalidInputError) as raised:
        parse_predict_body(b'{"inputs": [[' + b"1," * 63 + b"1000000000000000000000000000000]]}", max_batch=10)
    assert raised.value.message == "inputs[0] has values outside 0 to 16."
