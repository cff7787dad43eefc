import base64
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from serving.predictions.errors import InvalidInputError
from serving.predictions.images import image_to_input


def encode(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def draw_one(size: int = 200, *, ink: int = 0, paper: int = 255) -> Image.Image:
    image = Image.new("L", (size, size), paper)
    ImageDraw.Draw(image).rectangle([size * 0.45, size * 0.15, size * 0.55, size * 0.85], fill=ink)
    return image


def test_dark_ink_on_paper_becomes_high_values_on_a_zero_ground_like_the_training_digits():
    x = image_to_input(encode(draw_one())).reshape(8, 8)
    assert x.shape == (8, 8) and x.min() == 0 and x.max() == 16
    assert x[:, 3:5].sum() > 0 and x[:, 0].sum() == 0 and x[:, 7].sum() == 0


def test_light_ink_on_black_and_jpeg_give_the_same_shape_of_digit():
    dark_on_light = image_to_input(encode(draw_one()))
    light_on_dark = image_to_input(encode(draw_one(ink=255, paper=0), "JPEG"))
    assert np.abs(dark_on_light - light_on_dark).max() <= 4


def test_any_size_works():
    for size in (8, 31, 1024):
        assert image_to_input(encode(draw_one(size))).shape == (64,)


def test_transparent_png_is_composited_on_white():
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse([16, 8, 48, 56], outline=(0, 0, 0, 255), width=6)
    grid = image_to_input(encode(image)).reshape(8, 8)
    assert grid.max() == 16
    assert grid[3:5, 3:5].mean() < grid[3:5, [1, 6]].mean()  # the ring is ink, its transparent middle is not


def test_a_data_url_prefix_is_accepted():
    assert image_to_input("data:image/png;base64," + encode(draw_one())).shape == (64,)


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
        image_to_input(encoded)
    assert raised.value.message == message


def test_a_gif_is_refused_even_when_valid():
    image = draw_one()
    buffer = io.BytesIO()
    image.save(buffer, format="GIF")
    with pytest.raises(InvalidInputError):
        image_to_input(base64.b64encode(buffer.getvalue()).decode())


def test_a_decompression_bomb_is_refused_before_decoding():
    image = Image.new("1", (6000, 6000), 1)
    with pytest.raises(InvalidInputError) as raised:
        image_to_input(encode(image))
    assert "too large" in raised.value.message or "could not be decoded" in raised.value.message


def test_a_huge_canvas_is_refused_and_a_large_one_is_shrunk_first():
    with pytest.raises(InvalidInputError) as raised:
        image_to_input(encode(Image.new("L", (5000, 5000), 255)))
    assert raised.value.message == "image is too large; send at most 16 megapixels."
    assert image_to_input(encode(draw_one(3000))).shape == (64,)
