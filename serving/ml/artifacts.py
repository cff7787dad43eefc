"""Model artifacts: one numpy `.npz` file per model version, verified before use.

Layout, format version 1 (every entry a plain numeric or unicode array; object arrays and pickles are refused):

    format_version   int scalar, 1
    n_layers         int scalar, L >= 1 (hidden layers + the output layer)
    W0 .. W{L-1}     float (inputs_i, outputs_i): layer i computes h @ W{i} + b{i}; W0 takes 64 inputs and each
                     W{i}'s outputs equal W{i+1}'s inputs
    b0 .. b{L-1}     float (outputs_i,)
    input_scale      float scalar > 0: raw inputs (pixel intensities 0..16) are multiplied by it, e.g. 1/16
    input_levels     int scalar: -1, or n >= 2 to coarsen raw inputs to n evenly spaced values over 0..16 first
    class_labels     unicode array (`<U...`, not object) of the k class names; W{L-1} has k outputs

Hidden layers apply ReLU; the last layer gives logits (softmax is applied by the server). No other entries are
allowed. To register your own model, write these arrays with `numpy.savez` (or `save_artifact`) and run
`manage.py register_model_version`.

`load_artifact` checks the file's sha256 against the one recorded at registration *before* parsing anything,
then the format version, the shapes and the values; any problem raises `ArtifactError`. `save_artifact` writes
`<name>.part` and renames it into place, so a reader never sees half a file.
"""

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving.ml.mlp import MLPWeights

FORMAT_VERSION = 1
DEFAULT_INPUTS = 64
_FIXED_KEYS = {"format_version", "n_layers", "input_scale", "input_levels", "class_labels"}
# Zip entries carry a timestamp; a fixed one makes the bytes (and so the sha256) depend on the weights alone.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class ArtifactError(Exception):
    """The artifact is missing, tampered with, of an unknown format or internally inconsistent."""


@dataclass(frozen=True, eq=False)
class Artifact:
    """A verified artifact: the model and the class label of each of its outputs."""

    weights: MLPWeights
    class_labels: tuple[str, ...]
    sha256: str


def sha256_file(path: Path) -> str:
    """sha256 hex digest of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def part_path(path: Path) -> Path:
    """Where a file is written before it is renamed to `path`."""
    return path.with_name(path.name + ".part")


def write_file_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `<path>.part`, flush it to disk, then rename it over `path` (atomic on one filesystem).
    On failure the .part file is removed and `path` is untouched."""
    temporary = part_path(path)
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The same bytes `numpy.savez` would write, except for fixed timestamps, in key order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            with archive.open(info, mode="w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


def save_artifact(path: Path, weights: MLPWeights, *, class_labels: list[str]) -> str:
    """Write the model to `path` in format version 1, atomically, and return the sha256 of the file's bytes.
    The same weights and labels always give the same bytes."""
    labels = [str(label) for label in class_labels]
    if len(labels) != weights.n_outputs:
        raise ArtifactError(f"The model has {weights.n_outputs} outputs but {len(labels)} class labels were given.")
    arrays: dict[str, np.ndarray] = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "n_layers": np.array(len(weights.weights), dtype=np.int64),
    }
    arrays |= {f"W{i}": w for i, w in enumerate(weights.weights)}
    arrays |= {f"b{i}": b for i, b in enumerate(weights.biases)}
    arrays["input_scale"] = np.array(weights.input_scale, dtype=np.float64)
    levels = -1 if weights.input_levels is None else weights.input_levels
    arrays["input_levels"] = np.array(levels, dtype=np.int64)
    arrays["class_labels"] = np.array(labels, dtype=np.str_)
    data = _npz_bytes(arrays)
    write_file_atomically(Path(path), data)
    return hashlib.sha256(data).hexdigest()


def _scalar(arrays: dict[str, np.ndarray], key: str, kind: str) -> int | float:
    value = arrays[key]
    if value.shape != () or value.dtype.kind not in kind:
        raise ArtifactError(f"'{key}' must be a scalar of kind {kind!r}, got dtype {value.dtype} shape {value.shape}.")
    return value.item()


def read_artifact(path: Path, *, expected_sha256: str, expected_inputs: int = DEFAULT_INPUTS) -> Artifact:
    """Read and verify an artifact: the sha256 of its bytes must equal `expected_sha256` (checked before
    parsing), the format version must be 1, W0 must take `expected_inputs` inputs, the layers must chain and the
    last must have one output per class label. Raises ArtifactError otherwise."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ArtifactError(f"Cannot read artifact {path}: {exc.strerror or exc}.") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256.strip().lower():
        raise ArtifactError(f"Artifact {path} has sha256 {actual}, expected {expected_sha256}: refusing to load it.")
    # Parse the bytes that were hashed, not the file again: it could change between the check and the read.
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ArtifactError(f"Artifact {path} is a single array, not an npz archive.")
        with loaded:
            arrays = {key: loaded[key] for key in loaded.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        # ValueError is also how numpy refuses pickles and object arrays under allow_pickle=False.
        raise ArtifactError(f"Artifact {path} is not a valid npz file of plain arrays: {exc}") from exc
    weights, labels = _parse(arrays, path, expected_inputs)
    return Artifact(weights=weights, class_labels=labels, sha256=actual)


def _parse(arrays: dict[str, np.ndarray], path: Path, expected_inputs: int) -> tuple[MLPWeights, tuple[str, ...]]:
    if "format_version" not in arrays:
        raise ArtifactError(f"Artifact {path} has no 'format_version' entry.")
    version = _scalar(arrays, "format_version", "iu")
    if version != FORMAT_VERSION:
        raise ArtifactError(f"Artifact {path} is format version {version}; this server reads version {FORMAT_VERSION}.")
    missing = _FIXED_KEYS - arrays.keys()
    if missing:
        raise ArtifactError(f"Artifact {path} lacks {', '.join(sorted(missing))}.")
    n_layers = _scalar(arrays, "n_layers", "iu")
    # Bounded by the number of entries before any set of names is built from it.
    if not 1 <= n_layers <= len(arrays):
        raise ArtifactError(f"Artifact {path} declares {n_layers} layers.")
    layer_keys = {f"{prefix}{i}" for prefix in "Wb" for i in range(n_layers)}
    if layer_keys - arrays.keys():
        raise ArtifactError(
            f"Artifact {path} declares {n_layers} layers but lacks {sorted(layer_keys - arrays.keys())}."
        )
    unexpected = arrays.keys() - _FIXED_KEYS - layer_keys
    if unexpected:
        raise ArtifactError(f"Artifact {path} has unexpected entries {sorted(unexpected)}.")
    for key in sorted(layer_keys):
        if arrays[key].dtype.kind != "f":
            raise ArtifactError(f"'{key}' must be a float array, got {arrays[key].dtype}.")
    levels = _scalar(arrays, "input_levels", "iu")
    scale = _scalar(arrays, "input_scale", "f")
    if levels != -1 and levels < 2:
        raise ArtifactError(f"'input_levels' must be -1 or >= 2, got {levels}.")
    labels = arrays["class_labels"]
    if labels.dtype.kind != "U" or labels.ndim != 1 or labels.size == 0:
        raise ArtifactError(
            f"Artifact {path}: 'class_labels' must be a non-empty 1-D unicode array, got {labels.dtype}."
        )
    try:
        weights = MLPWeights(
            weights=tuple(arrays[f"W{i}"] for i in range(n_layers)),
            biases=tuple(arrays[f"b{i}"] for i in range(n_layers)),
            input_scale=float(scale),
            input_levels=None if levels == -1 else int(levels),
        )
    except ValueError as exc:
        raise ArtifactError(f"Artifact {path}: {exc}") from exc
    if weights.n_inputs != expected_inputs:
        raise ArtifactError(f"Artifact {path} takes {weights.n_inputs} inputs; the model takes {expected_inputs}.")
    if weights.n_outputs != labels.size:
        raise ArtifactError(f"Artifact {path} has {weights.n_outputs} outputs but {labels.size} class labels.")
    return weights, tuple(str(label) for label in labels)


def load_artifact(path: Path, *, expected_sha256: str, expected_inputs: int = DEFAULT_INPUTS) -> MLPWeights:
    """The verified model in the artifact at `path` (see `read_artifact` for the checks). Raises ArtifactError."""
    return read_artifact(path, expected_sha256=expected_sha256, expected_inputs=expected_inputs).weights
