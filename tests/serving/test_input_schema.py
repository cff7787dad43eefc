"""The input schema: validation of an operator's JSON, the canonical grid, and what the schema says of an input."""

import numpy as np
import pytest

from serving.input_schema import MAX_FEATURES, InputSchema, SchemaError
from tests.serving.helpers import DIGITS, DIGITS_SCHEMA, tabular_schema


def _image(**changes) -> dict:
    return {"kind": "image", "height": 28, "width": 28, "channels": 1, "min": 0.0, "max": 1.0} | changes


@pytest.mark.parametrize(
    ("data", "width", "dtype", "row_bytes"),
    [
        (tabular_schema(4, high=1.0, step=0.1), 4, np.uint8, 4),  # 11 levels
        (tabular_schema(13, high=100.0, step=0.01), 13, np.uint16, 26),  # 10,001 levels
        (tabular_schema(30, high=1000.0, step=0.001), 30, np.uint32, 120),  # a million levels
        (DIGITS_SCHEMA, 64, np.uint8, 64),
        (_image(), 784, np.uint8, 784),  # 256 levels by default
        (_image(height=32, width=32, channels=3, step=1 / 1023), 3072, np.uint16, 6144),
    ],
)
def test_a_schema_says_how_wide_an_input_is_and_how_many_bytes_its_canonical_form_takes(data, width, dtype, row_bytes):
    schema = InputSchema.from_dict(data)

    assert schema.n_features == width == len(schema.feature_names)
    assert schema.code_dtype == dtype and schema.row_bytes == row_bytes
    assert InputSchema.from_dict(schema.to_dict()).to_dict() == schema.to_dict()


def test_canonical_codes_round_half_up_so_no_nudge_below_half_a_step_changes_them():
    schema = InputSchema.from_dict(tabular_schema(4, high=1.0, step=0.1))
    x = np.array([[0.0, 0.15, 0.149, 1.0], [0.04, 0.25, 0.35, 0.96]])

    codes = schema.codes(x)

    assert codes.tolist() == [[0, 2, 1, 10], [0, 3, 4, 10]]
    assert np.allclose(schema.values(codes), [[0.0, 0.2, 0.1, 1.0], [0.0, 0.3, 0.4, 1.0]])
    assert np.array_equal(schema.codes(schema.values(codes)), codes)  # values on the grid are their own codes


def test_the_digits_schema_keeps_its_integer_intensities_as_they_are():
    x = np.arange(64, dtype=np.float64).reshape(1, 64) % 17

    assert DIGITS.codes(x).tolist() == x.astype(np.uint8).tolist()
    assert DIGITS.codes(x + 0.49).tolist() == DIGITS.codes(x).tolist()  # half up: 7.49 -> 7, 7.5 -> 8
    assert DIGITS.codes(np.full((1, 64), 7.5)).tolist() == [[8] * 64]
    assert DIGITS.describe_input() == "an 8x8 image, row by row, intensities 0 to 16"


def test_per_feature_bounds_and_steps():
    schema = InputSchema.from_dict(
        {
            "kind": "tabular",
            "features": [
                {"name": "age", "min": 18, "max": 100, "step": 1},
                {"name": "income", "min": 0, "max": 1_000_000, "step": 100},
            ],
        }
    )

    assert schema.bounds() == ([18.0, 0.0], [100.0, 1_000_000.0])
    assert schema.out_of_bounds(np.array([[17.0, 5.0], [50.0, 1_000_001.0]])).tolist() == [
        [True, False],
        [False, True],
    ]
    assert schema.codes(np.array([[30.4, 1250.0]])).tolist() == [[12, 13]]
    assert schema.value_label(1) == "feature 'income'" and schema.value_range_text(1) == "0 to 1e+06"


def test_a_colour_image_has_per_channel_bounds_and_names_its_pixels():
    schema = InputSchema.from_dict(_image(height=2, width=3, channels=3, min=[-1.0, 0.0, 0.0], max=[1.0, 1.0, 2.0]))

    assert schema.image_shape == (2, 3, 3) and schema.n_features == 18
    assert schema.low.tolist()[:6] == [-1.0, 0.0, 0.0, -1.0, 0.0, 0.0]
    assert schema.feature_names[:4] == ["pixel_0_0_0", "pixel_0_0_1", "pixel_0_0_2", "pixel_0_1_0"]
    assert schema.value_label(5) == "pixel (row 0, column 1, channel 2)"
    assert schema.describe_input() == "a 2x3 RGB image, row by row, 3 values per pixel, from (-1, 0, 0) to (1, 1, 2)"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("tabular", "must be a JSON object"),
        ({"kind": "audio"}, "'kind' must be 'tabular' or 'image', got 'audio'"),
        ({"kind": "tabular"}, "needs 'features': a non-empty list"),
        ({"kind": "tabular", "features": [], "extra": 1}, "Unknown key(s) in a tabular schema: extra"),
        ({"kind": "tabular", "features": [{"name": "a", "min": 0, "max": 1}]}, "Feature 'a' needs a 'step'"),
        (
            {"kind": "tabular", "features": [{"name": "a", "min": 0, "max": 1, "step": 0.1}] * 2},
            "'a' appears twice",
        ),
        ({"kind": "tabular", "features": [{"name": "a", "min": 1, "max": 1, "step": 0.1}]}, "min (1) must be smaller"),
        ({"kind": "tabular", "features": [{"name": "a", "min": 0, "max": 1, "step": 0}]}, "step must be positive"),
        ({"kind": "tabular", "features": [{"name": "a", "min": 0, "max": 1, "step": 0.3}]}, "not a whole number"),
        ({"kind": "tabular", "features": [{"name": "a", "min": 0, "max": 1e12, "step": 1e-3}]}, "too many"),
        ({"kind": "tabular", "features": [{"name": "a", "min": "0", "max": 1, "step": 1}]}, "must be a finite number"),
        ({"kind": "tabular", "features": [{"name": "", "min": 0, "max": 1, "step": 1}]}, "needs a 'name'"),
        (_image(height=0), "'height' must be a whole number from 1"),
        (_image(channels=2), "'channels' must be 1 (grayscale) or 3 (RGB)"),
        (_image(height=4096, width=4096, channels=3), f"at most {MAX_FEATURES:,} values"),
        (_image(channels=3, min=[0, 0]), "lists 2 values for 3 channel(s)"),
        (_image(preprocessing={"fit": "zoom"}), "preprocessing.fit must be one of"),
        (_image(preprocessing={"invert": "sometimes"}), "preprocessing.invert must be one of"),
        (_image(preprocessing={"fit": "contain", "margin": 0.1}), "applies to fit 'ink_box' only"),
        (_image(preprocessing={"fit": "ink_box", "margin": 0.5}), "0 <= margin < 0.5"),
        (_image(channels=3, preprocessing={"fit": "ink_box"}), "needs a grayscale (1-channel) image"),
        (_image(preprocessing={"rotate": True}), "Unknown key(s) in 'preprocessing': rotate"),
    ],
)
def test_a_schema_that_cannot_be_served_is_refused_with_a_sentence(data, message):
    with pytest.raises(SchemaError) as refused:
        InputSchema.from_dict(data)
    assert message in str(refused.value)


def test_codes_of_another_width_or_type_are_refused_rather_than_converted():
    schema = InputSchema.from_dict(tabular_schema(13, high=100.0))

    assert schema.check_codes(np.zeros((2, 13), dtype=np.uint16)).shape == (2, 13)
    with pytest.raises(ValueError, match="must be uint16"):
        schema.check_codes(np.zeros((2, 13), dtype=np.float64))
    with pytest.raises(ValueError, match=r"shape \(n, 13\)"):
        schema.check_codes(np.zeros((2, 12), dtype=np.uint16))
    with pytest.raises(ValueError, match="beyond"):
        schema.check_codes(np.full((1, 13), 10_001, dtype=np.uint16))


def test_the_query_logs_bytes_decode_back_to_the_canonical_rows():
    schema = InputSchema.from_dict(_image())
    codes = np.random.default_rng(0).integers(0, 256, (3, 784)).astype(np.uint8)

    assert np.array_equal(schema.decode_rows(codes.tobytes()), codes)


def test_the_json_schema_of_a_row_carries_per_feature_bounds_when_they_differ():
    uniform = DIGITS.row_json_schema()
    assert uniform["minItems"] == uniform["maxItems"] == 64 and uniform["items"]["maximum"] == 16.0

    tabular = InputSchema.from_dict(tabular_schema(4, high=1.0, step=0.1) | {"features": [
        {"name": "a", "min": 0, "max": 1, "step": 0.1},
        {"name": "b", "min": 0, "max": 2, "step": 0.1},
    ]}).row_json_schema()  # fmt: skip
    assert [item["maximum"] for item in tabular["prefixItems"]] == [1.0, 2.0] and tabular["items"] is False
