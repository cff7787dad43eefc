"""A served model's input schema: what one input is, its canonical grid, and how a picture becomes one.

The schema is data on the registry (`MLModel.input_schema`, a JSON object), one per model, and every room of the
serving path asks it rather than knowing a model: validation and its messages, the canonical form that keys the
output noise and the watermark, the tensor handed to the model, the query log's stored input, image preprocessing,
the API description and the docs (style habit 13: a constant of one model in shared code is a missing field here).

Two kinds:

- ``tabular``: ``{"kind": "tabular", "features": [{"name", "min", "max", "step"}, ...]}``: n named features, each
  with its bounds and its quantisation step.
- ``image``: ``{"kind": "image", "height", "width", "channels" (1 or 3), "min", "max", "step", "preprocessing"}``:
  the value range the model expects (a number, or one per channel), its grid step (default: 256 levels) and how an
  uploaded picture becomes that tensor (``preprocessing``: ``fit`` = ``contain`` | ``cover`` | ``stretch`` |
  ``ink_box``, ``invert`` = ``never`` | ``always`` | ``auto``, ``margin`` for ``ink_box``, ``normalize_peak``).
  An input is the flattened image in row-major height x width x channel order.

**The canonical form** of an input is its grid index per feature, ``round((x - min) / step)`` (half up), an unsigned
integer of the narrowest width that holds every feature's levels (1, 2 or 4 bytes). Inputs that differ by less than
half a step are the same query: the model answers the canonical values, and every keyed decision (noise,
watermark) and the query log's stored input are functions of these bytes, so no nudge below the grid re-rolls
anything.

Pure: numpy and the standard library, no Django.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TABULAR = "tabular"
IMAGE = "image"
KINDS = (TABULAR, IMAGE)
FITS = ("contain", "cover", "stretch", "ink_box")
INVERTS = ("never", "always", "auto")
# A bound on one input's width (a 3x256x256 image is 196,608): beyond it no body fits the API's size limit anyway.
MAX_FEATURES = 1 << 18
MAX_SIDE = 4096
MAX_LEVELS = 1 << 32  # 4-byte codes at most
MAX_NAME_LENGTH = 64
DEFAULT_IMAGE_LEVELS = 256
# How far (max - min) / step may be from a whole number, relative to it, before a feature's grid is refused.
_GRID_TOLERANCE = 1e-6
# Half a step, and a hair: a decimal half such as 0.15 on a grid of 0.1 is 1.4999999999999998 steps in binary
# floating point, and must round up like the 1.5 it is written as.
_HALF_STEP = 0.5 + 1e-9


class SchemaError(ValueError):
    """The schema cannot be served; the message says what is wrong, in a sentence for an operator."""


@dataclass(frozen=True)
class Feature:
    name: str
    min: float
    max: float
    step: float

    @property
    def levels(self) -> int:
        return round((self.max - self.min) / self.step) + 1


@dataclass(frozen=True)
class Preprocessing:
    """How an uploaded picture becomes an image input (see the module docstring)."""

    fit: str = "contain"
    invert: str = "never"
    margin: float = 0.0
    normalize_peak: bool = False


@dataclass(frozen=True, eq=False)
class InputSchema:
    """A validated schema (build it with `InputSchema.from_dict`). Arrays are read-only and computed once: the
    prediction path uses them on every request."""

    kind: str
    features: tuple[Feature, ...] = ()
    height: int = 0
    width: int = 0
    channels: int = 0
    channel_min: tuple[float, ...] = ()
    channel_max: tuple[float, ...] = ()
    channel_step: tuple[float, ...] = ()
    preprocessing: Preprocessing = field(default_factory=Preprocessing)

    def __post_init__(self) -> None:
        if self.kind == TABULAR:
            low = np.array([f.min for f in self.features], dtype=np.float64)
            high = np.array([f.max for f in self.features], dtype=np.float64)
            step = np.array([f.step for f in self.features], dtype=np.float64)
        else:
            pixels = self.height * self.width
            low = np.tile(np.array(self.channel_min, dtype=np.float64), pixels)
            high = np.tile(np.array(self.channel_max, dtype=np.float64), pixels)
            step = np.tile(np.array(self.channel_step, dtype=np.float64), pixels)
        levels = np.rint((high - low) / step).astype(np.int64) + 1
        max_level = int(levels.max())
        code_dtype = np.dtype(np.uint8 if max_level <= 1 << 8 else np.uint16 if max_level <= 1 << 16 else np.uint32)
        for name, value in (("low", low), ("high", high), ("step", step), ("levels", levels)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "top_code", levels - 1)
        object.__setattr__(self, "code_dtype", code_dtype)
        # Uniform bounds (every image, most tabular schemas of one kind of measurement) take a scalar fast path.
        object.__setattr__(self, "_uniform", bool(np.all(low == low[0]) and np.all(step == step[0])))

    # --- Construction and the JSON form ---------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: object) -> InputSchema:
        """Validate a schema's JSON form. Raises SchemaError with a sentence naming what is wrong."""
        if not isinstance(data, Mapping):
            raise SchemaError("The schema must be a JSON object with a 'kind' of 'tabular' or 'image'.")
        kind = data.get("kind")
        if kind == TABULAR:
            return cls._tabular(data)
        if kind == IMAGE:
            return cls._image(data)
        raise SchemaError(f"The schema's 'kind' must be 'tabular' or 'image', got {kind!r}.")

    @classmethod
    def _tabular(cls, data: Mapping) -> InputSchema:
        _only_keys(data, {"kind", "features"}, "a tabular schema")
        features = data.get("features")
        if not isinstance(features, list) or not features:
            raise SchemaError("A tabular schema needs 'features': a non-empty list of {name, min, max, step}.")
        if len(features) > MAX_FEATURES:
            raise SchemaError(f"A schema has at most {MAX_FEATURES:,} features; this one has {len(features):,}.")
        parsed: list[Feature] = []
        seen: set[str] = set()
        for index, item in enumerate(features):
            where = f"features[{index}]"
            if not isinstance(item, Mapping):
                raise SchemaError(f"{where} must be an object with name, min, max and step.")
            _only_keys(item, {"name", "min", "max", "step"}, where)
            name = item.get("name")
            if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
                raise SchemaError(f"{where} needs a 'name' of 1 to {MAX_NAME_LENGTH} characters.")
            if name in seen:
                raise SchemaError(f"Feature names must be distinct; '{name}' appears twice.")
            seen.add(name)
            low, high = (
                _number(item.get("min"), f"feature '{name}': min"),
                _number(item.get("max"), f"feature '{name}': max"),
            )
            if "step" not in item:
                raise SchemaError(f"Feature '{name}' needs a 'step' (its quantisation: the canonical grid).")
            step = _number(item.get("step"), f"feature '{name}': step")
            _check_grid(low, high, step, f"Feature '{name}'")
            parsed.append(Feature(name=name, min=low, max=high, step=step))
        return cls(kind=TABULAR, features=tuple(parsed))

    @classmethod
    def _image(cls, data: Mapping) -> InputSchema:
        _only_keys(
            data, {"kind", "height", "width", "channels", "min", "max", "step", "preprocessing"}, "an image schema"
        )
        sides = {}
        for key in ("height", "width"):
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIDE:
                raise SchemaError(f"An image schema's '{key}' must be a whole number from 1 to {MAX_SIDE}.")
            sides[key] = value
        channels = data.get("channels", 1)
        if channels not in (1, 3) or isinstance(channels, bool):
            raise SchemaError("An image schema's 'channels' must be 1 (grayscale) or 3 (RGB).")
        if sides["height"] * sides["width"] * channels > MAX_FEATURES:
            raise SchemaError(f"An image input holds at most {MAX_FEATURES:,} values (height x width x channels).")
        lows = _per_channel(data.get("min", 0.0), channels, "min")
        highs = _per_channel(data.get("max", 1.0), channels, "max")
        if "step" in data:
            steps = _per_channel(data["step"], channels, "step")
        else:
            steps = tuple((high - low) / (DEFAULT_IMAGE_LEVELS - 1) for low, high in zip(lows, highs, strict=True))
        for c, (low, high, step) in enumerate(zip(lows, highs, steps, strict=True)):
            _check_grid(low, high, step, "The image" if channels == 1 else f"Channel {c}")
        preprocessing = _preprocessing(data.get("preprocessing", {}), channels)
        return cls(
            kind=IMAGE,
            height=sides["height"],
            width=sides["width"],
            channels=channels,
            channel_min=lows,
            channel_max=highs,
            channel_step=steps,
            preprocessing=preprocessing,
        )

    def to_dict(self) -> dict[str, Any]:
        """The normalised JSON form: `InputSchema.from_dict(schema.to_dict())` is the same schema."""
        if self.kind == TABULAR:
            return {
                "kind": TABULAR,
                "features": [{"name": f.name, "min": f.min, "max": f.max, "step": f.step} for f in self.features],
            }
        return {
            "kind": IMAGE,
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "min": _scalar_or_list(self.channel_min),
            "max": _scalar_or_list(self.channel_max),
            "step": _scalar_or_list(self.channel_step),
            "preprocessing": {
                "fit": self.preprocessing.fit,
                "invert": self.preprocessing.invert,
                "margin": self.preprocessing.margin,
                "normalize_peak": self.preprocessing.normalize_peak,
            },
        }

    # --- What an input is ---------------------------------------------------------------------------------------

    @property
    def n_features(self) -> int:
        return len(self.features) if self.kind == TABULAR else self.height * self.width * self.channels

    @property
    def is_image(self) -> bool:
        return self.kind == IMAGE

    @property
    def row_bytes(self) -> int:
        """Bytes of one canonical input (the query log stores this much per input)."""
        return self.n_features * self.code_dtype.itemsize

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(height, width) for grayscale, (height, width, channels) for colour; () for tabular schemas."""
        if self.kind != IMAGE:
            return ()
        return (self.height, self.width) if self.channels == 1 else (self.height, self.width, self.channels)

    @property
    def feature_names(self) -> list[str]:
        """One name per value of an input, in order: the features' names, or `pixel_<row>_<column>[_<channel>]`."""
        if self.kind == TABULAR:
            return [f.name for f in self.features]
        if self.channels == 1:
            return [f"pixel_{y}_{x}" for y in range(self.height) for x in range(self.width)]
        return [
            f"pixel_{y}_{x}_{c}" for y in range(self.height) for x in range(self.width) for c in range(self.channels)
        ]

    def bounds(self) -> tuple[float | list[float], float | list[float]]:
        """(min, max) as the API's `input.min` / `input.max`: a number when every value shares it, else one per
        value (tabular) or per channel (colour images)."""
        if self.kind == TABULAR:
            return _scalar_or_list([f.min for f in self.features]), _scalar_or_list([f.max for f in self.features])
        return _scalar_or_list(self.channel_min), _scalar_or_list(self.channel_max)

    def step_description(self) -> float | list[float]:
        if self.kind == TABULAR:
            return _scalar_or_list([f.step for f in self.features])
        return _scalar_or_list(self.channel_step)

    def describe_input(self) -> str:
        """What one input is, in words, for error messages and the docs."""
        if self.kind == TABULAR:
            names = [f.name for f in self.features]
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            return f"the features {shown} in order"
        low, high = self.bounds()
        size = f"{_article(self.height)} {self.height}x{self.width}"
        if self.channels == 1:
            return f"{size} image, row by row, intensities {_fmt(low)} to {_fmt(high)}"
        return f"{size} RGB image, row by row, 3 values per pixel, from {_fmt(low)} to {_fmt(high)}"

    def value_range_text(self, index: int | None = None) -> str:
        """'<min> to <max>' of one value (or of every value, when they share their bounds)."""
        if index is None:
            low, high = self.bounds()
            return f"{_fmt(low)} to {_fmt(high)}"
        return f"{self.low[index]:g} to {self.high[index]:g}"

    def value_label(self, index: int) -> str:
        """A value's name in a message: `feature 'mean radius'` or `pixel (row 3, column 5)`."""
        if self.kind == TABULAR:
            return f"feature '{self.features[index].name}'"
        pixel, channel = divmod(index, self.channels)
        y, x = divmod(pixel, self.width)
        return (
            f"pixel (row {y}, column {x})" if self.channels == 1 else f"pixel (row {y}, column {x}, channel {channel})"
        )

    @property
    def uniform_bounds(self) -> bool:
        return self._uniform and bool(np.all(self.high == self.high[0]))

    # --- The canonical grid --------------------------------------------------------------------------------------

    def out_of_bounds(self, x: np.ndarray) -> np.ndarray:
        """(n, d) bool: the values outside their feature's [min, max]."""
        if self.uniform_bounds:
            return (x < self.low[0]) | (x > self.high[0])
        return (x < self.low) | (x > self.high)

    def codes(self, x: np.ndarray) -> np.ndarray:
        """The canonical form of inputs (n, d) within bounds: grid indices, rounded half up, as `code_dtype`."""
        x = np.asarray(x, dtype=np.float64)
        if self._uniform:
            index = np.floor((x - self.low[0]) / self.step[0] + _HALF_STEP)
        else:
            index = np.floor((x - self.low) / self.step + _HALF_STEP)
        # Bounds are checked before; the clip only absorbs a rounding at the top of a grid.
        return np.clip(index, 0, self.top_code).astype(self.code_dtype)

    def values(self, codes: np.ndarray) -> np.ndarray:
        """The inputs (n, d) float64 that canonical codes stand for: what the model is given."""
        codes = np.asarray(codes)
        if self._uniform:
            return self.low[0] + codes * self.step[0]
        return self.low + codes * self.step

    def check_codes(self, codes: np.ndarray) -> np.ndarray:
        """`codes` as a C-contiguous (n, d) array of `code_dtype`, or ValueError: keyed decisions hash these bytes,
        so anything else (floats, another width) is refused rather than converted."""
        codes = np.asarray(codes)
        if codes.dtype != self.code_dtype:
            raise ValueError(f"canonical inputs must be {self.code_dtype}, got {codes.dtype}; use schema.codes first")
        if codes.ndim == 1:
            codes = codes.reshape(1, -1)
        if codes.ndim != 2 or codes.shape[1] != self.n_features:
            raise ValueError(f"canonical inputs must have shape (n, {self.n_features}), got {codes.shape}")
        if codes.size and bool((codes > self.top_code).any()):
            raise ValueError("canonical inputs hold a code beyond their feature's grid")
        return np.ascontiguousarray(codes)

    def decode_rows(self, raw: bytes) -> np.ndarray:
        """Canonical rows (n, d) from the bytes the query log stores (`codes.tobytes()`)."""
        return np.frombuffer(raw, dtype=self.code_dtype).reshape(-1, self.n_features)

    # --- Descriptions for the API's documents -----------------------------------------------------------------

    def row_json_schema(self) -> dict[str, Any]:
        """JSON Schema (2020-12, as OpenAPI 3.1 uses) of one flat input."""
        n = self.n_features
        if self.uniform_bounds:
            items: dict[str, Any] = {"type": "number", "minimum": float(self.low[0]), "maximum": float(self.high[0])}
            return {"type": "array", "minItems": n, "maxItems": n, "items": items, "description": self.describe_input()}
        return {
            "type": "array",
            "minItems": n,
            "maxItems": n,
            "prefixItems": [
                {"type": "number", "minimum": float(lo), "maximum": float(hi), "title": name}
                for lo, hi, name in zip(self.low, self.high, self.feature_names, strict=True)
            ],
            "items": False,
            "description": self.describe_input(),
        }


# --- Validation helpers -------------------------------------------------------------------------------------------


def _only_keys(data: Mapping, allowed: set[str], where: str) -> None:
    unknown = sorted(str(key) for key in set(data) - allowed)
    if unknown:
        raise SchemaError(f"Unknown key(s) in {where}: {', '.join(unknown)}. Allowed: {', '.join(sorted(allowed))}.")


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SchemaError(f"{what[0].upper()}{what[1:]} must be a finite number, got {value!r}.")
    return float(value)


def _per_channel(value: object, channels: int, key: str) -> tuple[float, ...]:
    if isinstance(value, list):
        if len(value) != channels:
            raise SchemaError(f"An image schema's '{key}' lists {len(value)} values for {channels} channel(s).")
        return tuple(_number(v, f"the image's {key}") for v in value)
    return (_number(value, f"the image's {key}"),) * channels


def _check_grid(low: float, high: float, step: float, what: str) -> None:
    if not low < high:
        raise SchemaError(f"{what}: min ({low:g}) must be smaller than max ({high:g}).")
    if not step > 0:
        raise SchemaError(f"{what}: step must be positive, got {step:g}.")
    steps = (high - low) / step
    if steps + 1 > MAX_LEVELS:
        raise SchemaError(
            f"{what}: {steps + 1:.3g} grid levels is too many; "
            f"use a step of at least {(high - low) / (MAX_LEVELS - 1):.3g}."
        )
    if abs(steps - round(steps)) > _GRID_TOLERANCE * max(1.0, steps):
        raise SchemaError(f"{what}: max - min ({high - low:g}) is not a whole number of steps ({step:g}).")


def _preprocessing(data: object, channels: int) -> Preprocessing:
    if not isinstance(data, Mapping):
        raise SchemaError("An image schema's 'preprocessing' must be an object.")
    _only_keys(data, {"fit", "invert", "margin", "normalize_peak"}, "'preprocessing'")
    fit = data.get("fit", "contain")
    if fit not in FITS:
        raise SchemaError(f"preprocessing.fit must be one of {', '.join(FITS)}, got {fit!r}.")
    invert = data.get("invert", "auto" if fit == "ink_box" else "never")
    if invert not in INVERTS:
        raise SchemaError(f"preprocessing.invert must be one of {', '.join(INVERTS)}, got {invert!r}.")
    margin = _number(data.get("margin", 0.0), "preprocessing.margin")
    if not 0.0 <= margin < 0.5:
        raise SchemaError(
            f"preprocessing.margin is a fraction of the frame on each side, 0 <= margin < 0.5; got {margin:g}."
        )
    if margin and fit != "ink_box":
        raise SchemaError("preprocessing.margin applies to fit 'ink_box' only.")
    normalize_peak = data.get("normalize_peak", False)
    if not isinstance(normalize_peak, bool):
        raise SchemaError("preprocessing.normalize_peak must be true or false.")
    if fit == "ink_box" and channels != 1:
        raise SchemaError(
            "preprocessing.fit 'ink_box' finds ink on one channel: it needs a grayscale (1-channel) image."
        )
    return Preprocessing(fit=fit, invert=invert, margin=margin, normalize_peak=normalize_peak)


def _scalar_or_list(values: Sequence[float]) -> float | list[float]:
    values = [float(v) for v in values]
    return values[0] if all(v == values[0] for v in values) else values


def _article(number: int) -> str:
    """'an' before a number said with a vowel sound (8, 11, 18, 80-89, 800-899, 8000...), else 'a'."""
    text = str(number)
    return (
        "an" if text.startswith("8") or text in ("11", "18") or (len(text) == 4 and text[:2] in ("11", "18")) else "a"
    )


def _fmt(value: float | list[float]) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(f"{v:g}" for v in value) + ")"
    return f"{value:g}"
