"""Images in, model inputs out: any PNG or JPEG becomes an 8x8 grid of intensities 0..16, prepared like the
training data (dark ink on a light ground becomes high values; the digit is centred and scaled to fill the grid)."""

import base64
import binascii
import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from serving.predictions.errors import InvalidInputError

_MAX_PIXELS = 16_000_000  # refuse decompression bombs before decoding them
_WORKING_SIDE = 256  # the digit ends up 8x8: shrink anything larger first, in the decoder where it can
_GRID = 8


def _decode(encoded: object) -> Image.Image:
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
            image.draft("L", (_WORKING_SIDE, _WORKING_SIDE))  # JPEG: decode at a fraction of the size
            image.load()
    except InvalidInputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, Warning) as exc:
        raise InvalidInputError("image could not be decoded; send a PNG or JPEG.") from exc
    return image


def image_to_input(encoded: object) -> np.ndarray:
    """One input row (64 floats in 0..16) from a base64 PNG or JPEG of any size."""
    image = _decode(encoded)
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    gray_image = image.convert("L")
    gray_image.thumbnail((_WORKING_SIDE, _WORKING_SIDE), Image.Resampling.BOX)
    gray = np.asarray(gray_image, dtype=np.float32) / 255.0
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    ink = 1.0 - gray if border.mean() > 0.5 else gray  # the training digits are ink-high on a zero ground
    ink = np.clip(ink - np.median(border if border.mean() <= 0.5 else 1.0 - border), 0.0, 1.0)
    rows, cols = np.nonzero(ink > 0.1)
    if rows.size:
        ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    side = max(ink.shape)
    # Centre on a square canvas with half a cell of margin each side: the training digits nearly fill the grid.
    canvas_side = int(np.ceil(side * _GRID / (_GRID - 1)))
    canvas = np.zeros((canvas_side, canvas_side))
    top, left = (canvas_side - ink.shape[0]) // 2, (canvas_side - ink.shape[1]) // 2
    canvas[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    small = Image.fromarray((canvas * 255).astype(np.uint8)).resize((_GRID, _GRID), Image.Resampling.BOX)
    values = np.asarray(small, dtype=np.float64) / 255.0
    peak = values.max()
    if peak > 0:
        values = values / peak
    return np.clip(np.round(values * 16.0), 0, 16).reshape(-1)
