"""Images in, model inputs out: any PNG or JPEG becomes one input of an image model, as its schema's
`preprocessing` says (`serving.input_schema`).

The steps, in order: decode (PNG or JPEG only, refusing decompression bombs), put transparency on white, convert to
grayscale or RGB, shrink to a working size, invert (so that dark ink on paper becomes high values, when the schema
says so or, with `auto`, when the picture's border is light), fit into the frame (`stretch`, `contain` with a dark
border, `cover` by cropping, or `ink_box`: crop to the ink, subtract the paper's level and centre it on a square
canvas with the schema's margin, the way a digits data set was drawn), stretch the contrast when asked
(`normalize_peak`), then scale 0..1 onto the schema's value range and round to its grid.
"""

import base64
import binascii
import io
import math
import warnings
from fractions import Fraction

import numpy as np
from PIL import Image, UnidentifiedImageError

from serving.input_schema import InputSchema
from serving.predictions.errors import InvalidInputError

_MAX_PIXELS = 16_000_000  # refuse decompression bombs before decoding them
_MIN_WORKING_SIDE = 256  # anything larger is shrunk first, in the decoder where it can
_INK_LEVEL = 0.1  # after the paper's level is taken off, what counts as ink when finding the ink's box


def _decode(encoded: object, mode: str, working_side: int) -> Image.Image:
    if not isinstance(encoded, str) or not encoded:
        raise InvalidInputError("image must be a base64-encoded PNG or JPEG.")
    if encoded.startswith("data:") and "," in encoded:
        encoded = encoded.split(",", 1)[1]
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError("image is not valid base64.") from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=["PNG", "JPEG"])
            if image.width * image.height > _MAX_PIXELS:
                raise InvalidInputError("image is too large; send at most 16 megapixels.")
            image.draft(mode, (working_side, working_side))  # JPEG: decode at a fraction of the size
            image.load()
    except InvalidInputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, Warning) as exc:
        raise InvalidInputError("image could not be decoded; send a PNG or JPEG.") from exc
    return image


def _border(values: np.ndarray) -> np.ndarray:
    """The outermost pixels' luminance, (perimeter,)."""
    gray = values.mean(axis=2)
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


def _resize(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (h, w, c) values in 0..1 with a box filter, channel by channel, through 8-bit images."""
    channels = [
        np.asarray(
            Image.fromarray((values[:, :, c] * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BOX),
            dtype=np.float64,
        )
        / 255.0
        for c in range(values.shape[2])
    ]
    return np.stack(channels, axis=2)


def _contain(values: np.ndarray, height: int, width: int) -> np.ndarray:
    scale = min(height / values.shape[0], width / values.shape[1])
    inner_h = max(1, min(height, round(values.shape[0] * scale)))
    inner_w = max(1, min(width, round(values.shape[1] * scale)))
    inner = _resize(values, inner_h, inner_w)
    frame = np.zeros((height, width, values.shape[2]))
    top, left = (height - inner_h) // 2, (width - inner_w) // 2
    frame[top : top + inner_h, left : left + inner_w] = inner
    return frame


def _cover(values: np.ndarray, height: int, width: int) -> np.ndarray:
    scale = max(height / values.shape[0], width / values.shape[1])
    crop_h = max(1, min(values.shape[0], round(height / scale)))
    crop_w = max(1, min(values.shape[1], round(width / scale)))
    top, left = (values.shape[0] - crop_h) // 2, (values.shape[1] - crop_w) // 2
    return _resize(values[top : top + crop_h, left : left + crop_w], height, width)


def _ink_box(values: np.ndarray, height: int, width: int, margin: float) -> np.ndarray:
    """The ink cropped to its box, on a zero ground, centred on a canvas of the frame's proportions that leaves
    `margin` of the frame empty on each side, then shrunk to the frame."""
    paper = np.median(_border(values))
    ink = np.clip(values[:, :, 0] - paper, 0.0, 1.0)
    rows, cols = np.nonzero(ink > _INK_LEVEL)
    if rows.size:
        ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    # Exact arithmetic: the canvas size is a ceiling, which a float's last bit must not move.
    ratio = max(Fraction(ink.shape[0], height), Fraction(ink.shape[1], width)) / (1 - 2 * Fraction(margin))
    canvas = np.zeros((math.ceil(height * ratio), math.ceil(width * ratio)))
    top, left = (canvas.shape[0] - ink.shape[0]) // 2, (canvas.shape[1] - ink.shape[1]) // 2
    canvas[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    return _resize(canvas[:, :, np.newaxis], height, width)


def image_to_input(encoded: object, schema: InputSchema) -> np.ndarray:
    """One input row (schema.n_features floats on the schema's grid) from a base64 PNG or JPEG of any size.
    Raises InvalidInputError for anything that is not a decodable PNG or JPEG."""
    if not schema.is_image:
        raise InvalidInputError("This model takes numbers, not images: send inputs.")
    steps = schema.preprocessing
    mode = "L" if schema.channels == 1 else "RGB"
    working_side = max(_MIN_WORKING_SIDE, 2 * max(schema.height, schema.width))
    image = _decode(encoded, mode, working_side)
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    image = image.convert(mode)
    image.thumbnail((working_side, working_side), Image.Resampling.BOX)
    values = np.asarray(image, dtype=np.float32).reshape(image.height, image.width, -1) / 255.0
    inverted = steps.invert == "always" or (steps.invert == "auto" and _border(values).mean() > 0.5)
    if inverted:
        values = 1.0 - values
    height, width = schema.height, schema.width
    if steps.fit == "ink_box":
        frame = _ink_box(values, height, width, steps.margin)
    elif steps.fit == "contain":
        frame = _contain(values, height, width)
    elif steps.fit == "cover":
        frame = _cover(values, height, width)
    else:
        frame = _resize(values, height, width)
    if steps.normalize_peak:
        peak = frame.max()
        if peak > 0:
            frame = frame / peak
    low = np.asarray(schema.channel_min)
    high = np.asarray(schema.channel_max)
    step = np.asarray(schema.channel_step)
    # Onto the grid by rounding half to even, then back to values: the row is canonical as it stands.
    levels = np.rint(frame * ((high - low) / step))
    return np.clip(low + levels * step, low, high).reshape(-1)
