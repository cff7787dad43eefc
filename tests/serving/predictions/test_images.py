import base64
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from serving.predictions.errors import InvalidInputError
from serving.predictions.images import image_to_input
from tests.serving.helpers import DIGITS


def encode(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def draw_one(size: int = 200, *, ink: int = 0, paper: int = 255) -> Image.Image:
    image = Image.new("L", (size, size), paper)
    ImageDraw.Draw(image).rectangle([size * 0.45, size * 0.15, size * 0.55, size * 0.85], fill=ink)
    return image


def test_dark_ink_on_paper_becomes_high_values_on_a_zero_ground_like_the_training_digits():
    x = image_to_input(encode(draw_one()), DIGITS).reshape(8, 8)
    assert x.shape == (8, 8) and x.min() == 0 and x.max() == 16
    assert x[:, 3:5].sum() > 0 and x[:, 0].sum() == 0 and x[:, 7].sum() == 0


def test_light_ink_on_black_and_jpeg_give_the_same_shape_of_digit():
    dark_on_light = image_to_input(encode(draw_one()), DIGITS)
    light_on_dark = image_to_input(encode(draw_one(ink=255, paper=0), "JPEG"), DIGITS)
    assert np.abs(dark_on_light - light_on_dark).max() <= 4


def test_any_size_works():
    for size in (8, 31, 1024):
        assert image_to_input(encode(draw_one(size)), DIGITS).shape == (64,)


def test_transparent_png_is_composited_on_white():
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse([16, 8, 48, 56], outline=(0, 0, 0, 255), width=6)
    grid = image_to_input(encode(image), DIGITS).reshape(8, 8)
    assert grid.max() == 16
    assert grid[3:5, 3:5].mean() < grid[3:5, [1, 6]].mean()  # the ring is ink, its transparent middle is not


def test_a_data_url_prefix_is_accepted():
    assert image_to_input("data:image/png;base64," + encode(draw_one()), DIGITS).shape == (64,)


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        ("", "image must be a base64-encoded PNG or JPEG."),
        (42, "image must be a base64-encoded PNG or JPEG."),
        ("not base64!!", "image is not valid base64."),
        (base64.b64encode(b"GIF89a not really").decode(), "image could not be decoded; send a PNG or JPEG."),
        (base64.b64encode(b"\x89PNG\r\n\x1a\ntruncated").decode(), "image could not be decoded; send a PNG or JPEG."),
    ],
)
def test_undecodable_images_are_invalid_input(encoded, message):
    with pytest.raises(InvalidInputError) as raised:
        image_to_input(encoded, DIGITS)
    assert raised.value.message == message


def test_a_gif_is_refused_even_when_valid():
    image = draw_one()
    buffer = io.BytesIO()
    image.save(buffer, format="GIF")
    with pytest.raises(InvalidInputError):
        image_to_input(base64.b64encode(buffer.getvalue()).decode(), DIGITS)


def test_a_decompression_bomb_is_refused_before_decoding():
    image = Image.new("1", (6000, 6000), 1)
    with pytest.raises(InvalidInputError) as raised:
        image_to_input(encode(image), DIGITS)
    assert "too large" in raised.value.message or "could not be decoded" in raised.value.message


def test_a_huge_canvas_is_refused_and_a_large_one_is_shrunk_first():
    with pytest.raises(InvalidInputError) as raised:
        image_to_input(encode(Image.new("L", (5000, 5000), 255)), DIGITS)
    assert raised.value.message == "image is too large; send at most 16 megapixels."
    assert image_to_input(encode(draw_one(3000)), DIGITS).shape == (64,)


# --- Any image schema ----------------------------------------------------------------------------------------------


def _schema(**changes):
    from serving.input_schema import InputSchema

    return InputSchema.from_dict(
        {"kind": "image", "height": 4, "width": 6, "channels": 3, "min": 0, "max": 1} | changes
    )


def _picture(width: int, height: int, colour=(255, 0, 0), background=(0, 0, 255)) -> str:
    image = Image.new("RGB", (width, height), background)
    ImageDraw.Draw(image).rectangle([0, 0, width // 2 - 1, height - 1], fill=colour)  # the left half
    return encode(image)


def test_an_rgb_picture_is_stretched_to_the_frame_channel_last_on_the_schemas_grid():
    row = image_to_input(_picture(60, 40), _schema(preprocessing={"fit": "stretch"}))
    pixels = row.reshape(4, 6, 3)

    assert row.shape == (72,)
    assert pixels[:, :3].tolist() == [[[1.0, 0.0, 0.0]] * 3] * 4  # red left half
    assert pixels[:, 3:].tolist() == [[[0.0, 0.0, 1.0]] * 3] * 4  # blue right half
    assert np.allclose(row * 255, np.round(row * 255))  # on the 256-level grid


def test_contain_keeps_the_whole_picture_with_a_dark_border_and_cover_crops_it():
    tall = _picture(20, 40, colour=(255, 255, 255), background=(255, 255, 255))  # a white 1:2 strip

    contained = image_to_input(tall, _schema(height=4, width=4, preprocessing={"fit": "contain"})).reshape(4, 4, 3)
    covered = image_to_input(tall, _schema(height=4, width=4, preprocessing={"fit": "cover"})).reshape(4, 4, 3)

    assert contained[:, 1:3].min() == 1.0 and contained[:, [0, 3]].max() == 0.0  # the strip, centred, on black
    assert covered.min() == 1.0  # the middle of the strip fills the frame


def test_values_are_scaled_onto_each_channels_range_and_inverted_when_asked():
    schema = _schema(height=1, width=1, min=[-1, 0, 0], max=[1, 2, 255], step=[2 / 255, 2 / 255, 1])
    white = image_to_input(_picture(2, 2, (255, 255, 255), (255, 255, 255)), schema)
    inverted = image_to_input(
        _picture(2, 2, (255, 255, 255), (255, 255, 255)),
        _schema(height=1, width=1, preprocessing={"fit": "stretch", "invert": "always"}),
    )

    assert white.tolist() == [1.0, 2.0, 255.0]
    assert inverted.tolist() == [0.0, 0.0, 0.0]


def test_an_mnist_like_schema_centres_the_ink_with_its_margin():
    schema = _schema(
        height=28, width=28, channels=1, step=1 / 255,
        preprocessing={"fit": "ink_box", "margin": 4 / 28, "invert": "auto", "normalize_peak": True},
    )  # fmt: skip
    grid = image_to_input(encode(draw_one(300)), schema).reshape(28, 28)

    rows, cols = np.nonzero(grid > 0.1)
    assert grid.max() == 1.0
    assert rows.min() >= 4 and rows.max() <= 23  # the stroke fills the 20-pixel box, not the margin
    assert cols.min() >= 11 and cols.max() <= 16  # a narrow bar, centred


def test_a_tabular_model_takes_no_picture():
    from serving.input_schema import InputSchema
    from tests.serving.helpers import tabular_schema

    with pytest.raises(InvalidInputError, match="takes numbers, not images"):
        image_to_input(encode(draw_one()), InputSchema.from_dict(tabular_schema(4)))
