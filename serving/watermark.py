"""Keyed output watermarking over input regions, for any input schema: which answers carry the watermark, what it
costs honest users, and how to prove that a suspect model learned from it.

DAWN (Szyller et al. 2021) gives a keyed fraction of single inputs a wrong label. That proves theft by a copy that
memorises its answers, but not by a regularised one trained on natural data: a thief sends many variants of each of
its natural inputs, all but the rare watermark input answered truly, and its copy smooths the isolated wrong
answers away (the red-team exercise measured exactly that). So the watermark is keyed on a coarse **region** of the
input space:

- `RegionWatermark.fit(schema, reference, secret=..., n_classes=...)` makes a model's regions from its canonical
  inputs, its reference data (the natural inputs its operator registered) and the server's `WATERMARK_SECRET`: an
  image is first averaged over at most `POOL_CELLS` x `POOL_CELLS` blocks per channel and scaled to unit length (a
  light and a heavy stroke of one shape are one point) and its pixels share one scale; a tabular model's features
  are each standardised with the reference data's spread. The result is projected on `REGION_PROJECTIONS` keyed
  directions and cut in cells `REGION_WIDTH` reference spreads wide (narrower for models of fewer classes), with
  keyed offsets. Inputs in the same cells share a region; natural variants of one input mostly share its region, and
  two different natural inputs mostly do not. All of it folds into one affine map: one matrix product on the
  prediction path.
- A keyed hash (BLAKE2b) of a region's cells under the secret decides whether the region is marked (a keyed word
  below the tier's *threshold*) and its watermark class, uniform over all classes. Every input of a marked region
  whose own label differs from the region's class is answered with that class: a whole neighbourhood carries one
  consistent wrong answer, which a copy learns like any other pattern of its training data.
- **The honest cost is bounded, not drawn**: regions hold different numbers of natural inputs, so the share of
  natural inputs in marked regions would depend on the draw of the secret (from 0.1% to 3.8% of digits at 1.5% of
  regions, before). The threshold of a tier's fraction f is the largest t <= f at which at most f of the model's
  reference inputs lie in regions whose word is below t (`RegionWatermark.threshold`), so inputs like the reference
  data pay at most f, whatever the secret; an unlucky secret only lowers the share of regions marked. To keep that
  rare, `fit` keeps the best of a few keyed grids (`GEOMETRY_CANDIDATES`). Thresholds are monotone in f: a tier with
  a smaller fraction marks a subset of a larger one's regions, so tiers never contradict each other.
- Nobody without the secret can tell a marked region or guess its class; the same input always gets the same
  answer from every key.

`serving.watermark_verification` proves a copy: an exact test region by region, and the probes it asks.
This module is pure: numpy and the standard library only, no Django.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
from dataclasses import asdict, dataclass

import numpy as np

from serving.input_schema import InputSchema

# Domain separation: the watermark and the noise may one day share a secret by mistake; their keyed hashes never
# relate because each has its own personalisation. v3: regions of any schema, fitted on the reference data (v2 keyed
# the digits' own 4x4 block sums, v1 single inputs). Bump the version to re-key every watermark choice at once.
WATERMARK_DOMAIN = b"moat.watermark.v3\x00"
REGION_GEOMETRY_DOMAIN = b"moat.watermark.v3.geometry\x00"
# The region grid, chosen offline on the digits red team's natural-data thieves (README, "Watermark"): with 6 keyed
# projections cut every 0.8 reference spreads, a regularised copy of 3,000 public answers was flagged under 11 of 12
# secrets (a closely fitted one under all 12): coarse enough for a copy to learn a region's answer, fine enough for
# those answers to reach the dozen or more marked regions a verdict needs. 0.7 flagged 10 of 12, 0.5 five of 8.
REGION_PROJECTIONS = 6
REGION_WIDTH = 0.8  # in reference spreads of each projection, for a model of GRID_CLASSES classes
# A learned region weighs about log(k) against chance (the region's class is one of k), so a model with fewer classes
# needs more learned regions for the same verdict: its cells are narrower, by log(k) / log(GRID_CLASSES). Measured on
# the breast-cancer demo (2 classes): at the 10-class width a thief with a few hundred natural rows reached 4 to 8
# marked regions, too few to prove anything; at the narrower width, 20 to 40, and every memorising copy was flagged.
GRID_CLASSES = 10
POOL_CELLS = 4  # images are averaged over at most this many blocks per side first
# A feature that never varies in the reference data would otherwise take an infinite weight.
_SPREAD_FLOOR = 0.05  # times the mean spread of the standardised features
_MAX_CALIBRATION_ROWS = 20_000  # the reference rows the thresholds are calibrated on (a seeded sample beyond)
# The keyed grids tried per model and secret, and the fractions they are judged at (see `RegionWatermark.fit`).
GEOMETRY_CANDIDATES = 8
CALIBRATION_FRACTIONS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.05)
DEFAULT_WATERMARK_FRACTION = 0.015
DEFAULT_ALPHA = 0.01

_TWO_64 = float(2**64)
_CELL_LIMIT = 2**31 - 1


@functools.lru_cache(maxsize=16)
def _keyed_hash(secret: bytes, domain: bytes, digest_size: int) -> hashlib.blake2b:
    """A keyed BLAKE2b state for one secret and one use: the key is BLAKE2b-512 of the secret (any length fits) and
    the domain is the personalisation, so two uses of one secret never give related outputs. Cached: a process
    derives it once per secret and use."""
    key = hashlib.blake2b(secret, digest_size=64).digest()
    person = hashlib.blake2b(domain, digest_size=16).digest()
    return hashlib.blake2b(key=key, person=person, digest_size=digest_size)


def keyed_digests(messages: bytes, width: int, *, secret: bytes, domain: bytes, digest_size: int = 32) -> bytes:
    """A keyed pseudo-random function (keyed BLAKE2b, a MAC by design) of every `width`-byte message in `messages`:
    `digest_size` bytes per message, concatenated.

    The prediction path's one unavoidable per-row loop: the keyed state is made once and copied per message, one C
    call each, about a microsecond a row (HMAC-SHA256 through Python's hmac wrapper cost three times that).
    """
    keyed = _keyed_hash(bytes(secret), domain, digest_size)
    out = []
    for start in range(0, len(messages), width):
        state = keyed.copy()
        state.update(messages[start : start + width])
        out.append(state.digest())
    return b"".join(out)


def keyed_row_digests(rows: np.ndarray, *, secret: bytes, domain: bytes, digest_size: int = 32) -> bytes:
    """`keyed_digests` of every canonical row's bytes (the output noise is keyed on the exact input)."""
    rows = np.ascontiguousarray(rows)
    width = rows.shape[1] * rows.itemsize
    return keyed_digests(rows.tobytes(), width, secret=secret, domain=domain, digest_size=digest_size)


def _check_fraction(fraction: float) -> None:
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"watermark fraction must be in [0, 1), got {fraction}")


def _pooling_matrix(schema: InputSchema) -> np.ndarray | None:
    """(d, p) 0/1 for image schemas larger than POOL_CELLS per side: value i belongs to block j of its channel, so
    `values @ it` sums blocks. None when nothing is pooled (tabular schemas, small images)."""
    if not schema.is_image or (schema.height <= POOL_CELLS and schema.width <= POOL_CELLS):
        return None
    block_h = -(-schema.height // POOL_CELLS)
    block_w = -(-schema.width // POOL_CELLS)
    cells_h, cells_w, channels = -(-schema.height // block_h), -(-schema.width // block_w), schema.channels
    matrix = np.zeros((schema.n_features, cells_h * cells_w * channels))
    index = np.arange(schema.n_features)
    pixel, channel = np.divmod(index, channels)
    y, x = np.divmod(pixel, schema.width)
    matrix[index, ((y // block_h) * cells_w + x // block_w) * channels + channel] = 1.0
    return matrix


@dataclass(frozen=True)
class Regions:
    """The watermark's view of a batch of rows: `cells` (n, REGION_PROJECTIONS) int32 (equal cells: one region),
    `keys` (n,) uint64 (the region's keyed word: marked when below the tier's threshold) and `labels` (n,) int64
    (the region's watermark class, uniform over all classes; defined for unmarked regions too)."""

    cells: np.ndarray
    keys: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class Calibration:
    """What a tier's fraction f marks for one model: `threshold` (<= f: the share of regions marked),
    `reference_share` (the share of the reference inputs in marked regions, <= f) and, when a labelled held-out set
    was given, `heldout_share` (the share of natural inputs the calibration never saw that lie in marked regions)."""

    fraction: float
    threshold: float
    reference_share: float
    heldout_share: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


class RegionWatermark:
    """One model's watermark regions under one secret (see the module docstring). Immutable once made; the
    thresholds per fraction are memoised (one per tier setting)."""

    def __init__(
        self,
        *,
        schema: InputSchema,
        secret: bytes,
        pooling: np.ndarray | None,
        projection: np.ndarray,
        offset: np.ndarray,
    ) -> None:
        self.schema = schema
        self.secret = bytes(secret)
        self._pooling = pooling
        self._projection = projection
        self._offset = offset
        for array in (projection, offset):
            array.setflags(write=False)
        self._reference_keys = np.zeros(0, dtype=np.uint64)  # the reference rows' region keys, sorted
        self._reference_rows = 0
        self._thresholds: dict[float, int] = {}

    @classmethod
    def fit(cls, schema: InputSchema, reference: np.ndarray, *, secret: bytes, n_classes: int) -> RegionWatermark:
        """The regions of a model with input `schema`, canonical reference inputs `reference` (m, d) and `n_classes`
        classes, keyed by `secret`. Deterministic: every process derives the same regions from the same data and
        secret. Raises ValueError for fewer than two distinct reference inputs or classes.

        Of `GEOMETRY_CANDIDATES` keyed grids, the one kept is the one whose thresholds stay closest to their
        fractions over `CALIBRATION_FRACTIONS` (the least watermark given up to bound the honest cost)."""
        codes = schema.check_codes(reference)
        if np.unique(codes, axis=0).shape[0] < 2:
            raise ValueError("the watermark's regions need at least two distinct reference inputs")
        if n_classes < 2:
            raise ValueError("a watermark needs at least two classes")
        cell_width = REGION_WIDTH * min(1.0, math.log(n_classes) / math.log(GRID_CLASSES))
        pooling = _pooling_matrix(schema)
        features = _features(codes.astype(np.float64), pooling, unit_length=schema.is_image)
        mean = features.mean(axis=0)
        if schema.is_image:
            # Pixels share one unit: one spread for all, so that rarely inked pixels are not blown up to the weight
            # of the strokes (per-pixel scaling split natural variants of one input over many regions).
            spread = np.full(features.shape[1], max(float(np.sqrt(features.var(axis=0).mean())), 1e-12))
        else:
            # Tabular features have units of their own: each is scaled by its own spread.
            spread = features.std(axis=0)
            spread = np.maximum(spread, _SPREAD_FLOOR * max(float(spread.mean()), 1e-12))
        standardised = (features - mean) / spread
        rows = codes
        if codes.shape[0] > _MAX_CALIBRATION_ROWS:
            sample = np.random.default_rng(0).choice(codes.shape[0], _MAX_CALIBRATION_ROWS, replace=False)
            rows = codes[np.sort(sample)]
        best: tuple[float, RegionWatermark] | None = None
        for candidate in range(GEOMETRY_CANDIDATES):
            message = REGION_GEOMETRY_DOMAIN + candidate.to_bytes(4, "big")
            rng = np.random.default_rng(int.from_bytes(hmac.digest(bytes(secret), message, "sha256"), "big"))
            directions = rng.normal(size=(features.shape[1], REGION_PROJECTIONS))
            directions /= np.linalg.norm(directions, axis=0, keepdims=True)
            offsets = rng.uniform(0.0, 1.0, REGION_PROJECTIONS)
            width = cell_width * np.maximum((standardised @ directions).std(axis=0), 1e-12)
            # cells = floor(((features - mean) / spread) @ directions / width + offsets), as one affine map.
            projection = (directions / spread[:, None]) / width[None, :]
            offset = offsets - (mean / spread) @ directions / width
            watermark = cls(schema=schema, secret=secret, pooling=pooling, projection=projection, offset=offset)
            watermark._calibrate(watermark.regions(rows, 2).keys)
            kept = min(watermark.threshold(fraction) / fraction for fraction in CALIBRATION_FRACTIONS)
            if best is None or kept > best[0]:
                best = (kept, watermark)
            if kept >= 1.0:
                break
        return best[1]

    def _calibrate(self, keys: np.ndarray) -> None:
        self._reference_rows = int(keys.size)
        self._reference_keys = np.sort(keys)
        self._reference_keys.setflags(write=False)

    # --- Regions ------------------------------------------------------------------------------------------------

    def cells(self, codes: np.ndarray) -> np.ndarray:
        """(n, REGION_PROJECTIONS) int32: the keyed grid cell of each canonical row; equal cells, one region."""
        features = np.asarray(codes, dtype=np.float64)
        if self._pooling is not None:
            features = features @ self._pooling
        projected = features @ self._projection
        if self.schema.is_image:
            # Unit length: the projection is linear, so scaling the projected rows is scaling the features.
            norms = np.sqrt(np.einsum("ij,ij->i", features, features))
            norms[norms == 0.0] = 1.0
            projected /= norms[:, None]
        projected += self._offset
        np.floor(projected, out=projected)
        np.clip(projected, -_CELL_LIMIT, _CELL_LIMIT, out=projected)
        return projected.astype(np.int32)

    def regions(self, codes: np.ndarray, n_classes: int) -> Regions:
        """Each row's region, its key and its watermark class: one keyed hash per row. Bytes 0..7 of the keyed hash of
        the region's cells, as an unsigned number, are the key; bytes 8..15 modulo `n_classes` the class."""
        if n_classes < 2:
            raise ValueError("a watermark needs at least two classes")
        cells = self.cells(self.schema.check_codes(codes))
        raw = keyed_digests(
            cells.tobytes(), 4 * REGION_PROJECTIONS, secret=self.secret, domain=WATERMARK_DOMAIN, digest_size=16
        )
        words = np.frombuffer(raw, dtype=">u8").reshape(cells.shape[0], 2)
        return Regions(
            cells=cells,
            keys=words[:, 0].astype(np.uint64),
            labels=(words[:, 1] % np.uint64(n_classes)).astype(np.int64),
        )

    def marked(self, keys: np.ndarray, *, fraction: float) -> np.ndarray:
        """(n,) bool: the regions with these keys are marked at `fraction`."""
        return keys < np.uint64(self._threshold_key(fraction))

    # --- The honest cost -----------------------------------------------------------------------------------------

    def _threshold_key(self, fraction: float) -> int:
        """The largest key threshold t <= fraction * 2^64 such that at most `fraction` of the reference inputs lie
        in (uncrowded) regions whose key is below t."""
        _check_fraction(fraction)
        cached = self._thresholds.get(fraction)
        if cached is not None:
            return cached
        keys = self._reference_keys
        ceiling = min(int(fraction * _TWO_64), 2**64 - 1)
        allowed = fraction * self._reference_rows
        if np.searchsorted(keys, np.uint64(ceiling), side="left") <= allowed:
            threshold = ceiling
        else:
            # Candidates are the reference regions' own keys: below the first key whose region would put the share
            # over `fraction`. keys[k] has k reference inputs strictly below it (ties share a region).
            below = np.searchsorted(keys, keys, side="left")
            fits = below <= allowed
            threshold = int(keys[fits].max()) if fits.any() else 0
        self._thresholds[fraction] = threshold
        return threshold

    def threshold(self, fraction: float) -> float:
        """The share of all regions marked at `fraction` (<= fraction)."""
        return self._threshold_key(fraction) / _TWO_64

    def calibration(self, fraction: float, *, heldout: np.ndarray | None = None) -> Calibration:
        """The figures of a tier's fraction for this model (see `Calibration`)."""
        threshold = self._threshold_key(fraction)
        inside = int(np.searchsorted(self._reference_keys, np.uint64(threshold), side="left"))
        heldout_share = None
        if heldout is not None and len(heldout):
            heldout_share = float(np.mean(self.marked(self.regions(heldout, 2).keys, fraction=fraction)))
        return Calibration(
            fraction=fraction,
            threshold=threshold / _TWO_64,
            reference_share=inside / self._reference_rows if self._reference_rows else 0.0,
            heldout_share=heldout_share,
        )

    # --- Serving --------------------------------------------------------------------------------------------------

    def decide(
        self, codes: np.ndarray, clean_indices: np.ndarray, n_classes: int, *, fraction: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """The prediction path's decision for a batch: `(is_watermark, label_index)`. A row is answered with the
        watermark when its region is marked and the region's class is not the row's own clean class (a row that
        already is the region's class is answered truly). `label_index` is the region's class for every row."""
        regions = self.regions(codes, n_classes)
        clean = np.asarray(clean_indices, dtype=np.int64).reshape(-1)
        if clean.shape[0] != regions.labels.shape[0]:
            raise ValueError(f"{regions.labels.shape[0]} inputs but {clean.shape[0]} clean labels")
        if clean.size and (clean.min() < 0 or clean.max() >= n_classes):
            raise ValueError(f"clean labels must be class indices in 0..{n_classes - 1}")
        return self.marked(regions.keys, fraction=fraction) & (regions.labels != clean), regions.labels

    def in_marked_region(self, codes: np.ndarray, *, fraction: float) -> np.ndarray:
        """(n,) bool: the canonical row lies in a marked region (whatever its own label)."""
        return self.marked(self.regions(codes, 2).keys, fraction=fraction)


def _features(values: np.ndarray, pooling: np.ndarray | None, *, unit_length: bool) -> np.ndarray:
    """The pooled (images) and, for images, unit-length features a region is cut from."""
    features = values @ pooling if pooling is not None else values
    if unit_length:
        norms = np.sqrt(np.einsum("ij,ij->i", features, features))
        norms[norms == 0.0] = 1.0
        features = features / norms[:, None]
    return features
