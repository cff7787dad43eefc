"""Schemathesis hooks for tests/security/test_fuzzing.py (loaded through SCHEMATHESIS_HOOKS).

The OpenAPI document marks the predict body's `image` with the format `base64-image`: a JSON Schema cannot say "a
decodable PNG or JPEG", so without this strategy every schema-valid image the fuzzer made up would be random base64,
which the API rightly refuses. Here the positive cases are real images of every size, pixel mode and encoding the API
promises to take, so the fuzzer checks that each of them is answered (and never crashes the decoder)."""

import base64
import io

import schemathesis
from hypothesis import strategies as st
from PIL import Image

# The pixel modes each format can carry; the API composites transparency on white and reduces everything to gray.
MODES = {
    "PNG": ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"),
    "JPEG": ("L", "RGB", "CMYK"),
}


@st.composite
def base64_images(draw: st.DrawFn) -> str:
    image_format = draw(st.sampled_from(sorted(MODES)))
    mode = draw(st.sampled_from(MODES[image_format]))
    size = (draw(st.integers(1, 48)), draw(st.integers(1, 48)))
    length = len(Image.new(mode, size).tobytes())
    pattern = draw(st.binary(min_size=1, max_size=64))
    image = Image.frombytes(mode, size, (pattern * (length // len(pattern) + 1))[:length])
    options = {}
    if mode == "P" and draw(st.booleans()):
        options["transparency"] = draw(st.integers(0, 255))
    if image_format == "JPEG":
        options["quality"] = draw(st.integers(1, 95))
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    if draw(st.booleans()):
        encoded = f"data:image/{image_format.lower()};base64,{encoded}"
    return encoded


schemathesis.openapi.format("base64-image", base64_images())
