import numpy as np
import orjson
import pytest

from serving.predictions.errors import InvalidInputError
from serving.predictions.validation import parse_predict_body
from tests.serving.helpers import DIGITS

ROW = [float(i % 17) for i in range(64)]


def body(payload: object) -> bytes:
    return orjson.dumps(payload)


def test_a_batch_becomes_a_float_array_in_request_order():
    x = parse_predict_body(body({"inputs": [ROW, [0] * 64, [16] * 64]}), schema=DIGITS, max_batch=10)
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
        parse_predict_body(raw, schema=DIGITS, max_batch=10)
    assert raised.value.message == message
    assert raised.value.status == 400 and raised.value.code == "invalid_input"


def test_a_batch_over_the_plans_limit_is_refused_whole():
    with pytest.raises(InvalidInputError) as raised:
        parse_predict_body(body({"inputs": [ROW] * 11}), schema=DIGITS, max_batch=10)
    assert raised.value.message == "Your plan allows at most 10 inputs per request; this one has 11."


def test_huge_integers_are_out_of_range_not_a_crash():
    with pytest.raises(InvalidInputError) as raised:
        parse_predict_body(
            b'{"inputs": [[' + b"1," * 63 + b"1000000000000000000000000000000]]}", schema=DIGITS, max_batch=10
        )
    assert raised.value.message == "inputs[0] has values outside 0 to 16."


# --- Any schema ------------------------------------------------------------------------------------------------


def _tabular():
    from serving.input_schema import InputSchema

    return InputSchema.from_dict(
        {
            "kind": "tabular",
            "features": [
                {"name": "age", "min": 18, "max": 100, "step": 1},
                {"name": "income", "min": 0, "max": 500_000, "step": 10},
                {"name": "score", "min": -1, "max": 1, "step": 0.01},
            ],
        }
    )


def test_a_tabular_row_names_the_feature_and_its_range_when_a_value_is_outside_it():
    schema = _tabular()

    assert parse_predict_body(body({"inputs": [[30, 1000, 0.5]]}), schema=schema, max_batch=5).tolist() == [
        [30.0, 1000.0, 0.5]
    ]
    for row, message in [
        ([17, 1000, 0.5], "inputs[1]: feature 'age' is 17, outside its allowed 18 to 100."),
        ([30, 1000, 1.5], "inputs[1]: feature 'score' is 1.5, outside its allowed -1 to 1."),
        ([30, 1000], "inputs[1] has 2 values; each input needs 3 (the features age, income, score in order)."),
    ]:
        with pytest.raises(InvalidInputError) as raised:
            parse_predict_body(body({"inputs": [[30, 1000, 0.5], row]}), schema=schema, max_batch=5)
        assert raised.value.message == message


def test_a_tabular_model_is_sent_numbers_only():
    with pytest.raises(InvalidInputError) as raised:
        parse_predict_body(body({"image": "aGk="}), schema=_tabular(), max_batch=5)
    assert raised.value.message == 'This model takes numbers, not pictures. Send {"inputs": [[3 numbers], ...]}.'
    with pytest.raises(InvalidInputError) as raised:
        parse_predict_body(body({}), schema=_tabular(), max_batch=5)
    assert raised.value.message == 'Send {"inputs": [[3 numbers], ...]}.'


def test_an_image_may_come_flat_or_as_nested_rows_and_a_wrong_nesting_says_the_shape():
    from serving.input_schema import InputSchema

    schema = InputSchema.from_dict({"kind": "image", "height": 2, "width": 3, "channels": 3, "min": 0, "max": 1})
    flat = [i / 17 for i in range(18)]
    nested = np.array(flat).reshape(2, 3, 3).tolist()

    both = parse_predict_body(body({"inputs": [flat, nested]}), schema=schema, max_batch=5)
    assert both.shape == (2, 18) and np.array_equal(both[0], both[1])
    with pytest.raises(InvalidInputError) as raised:
        parse_predict_body(body({"inputs": [flat, nested[:1]]}), schema=schema, max_batch=5)
    assert raised.value.message == (
        "inputs[1] is a nested list of shape 1x3x3; each input is 2x3x3 (or a flat list of 18 numbers: a 2x3 RGB "
        "image, row by row, 3 values per pixel, from 0 to 1)."
    )


def test_the_digits_model_takes_its_8x8_nesting_too():
    assert parse_predict_body(
        body({"inputs": [np.reshape(ROW, (8, 8)).tolist()]}), schema=DIGITS, max_batch=2
    ).tolist() == [ROW]
