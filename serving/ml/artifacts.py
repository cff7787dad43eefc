"""Artifact files: a model version's ONNX graph and a model's data files (reference inputs, held-out set), each
verified by sha256 before anything reads it, and written atomically.

`read_verified` checks the file's sha256 against the one recorded at registration *before* its bytes are parsed,
and returns exactly the bytes it hashed (the file could change between a check and a second read).
`write_file_atomically` writes `<name>.part`, flushes it to disk and renames it into place, so a reader never sees
half a file. Nothing is ever unpickled: arrays are read with `numpy.load(..., allow_pickle=False)`.
"""

import hashlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np


class ArtifactError(Exception):
    """The artifact is missing, tampered with, or not what it claims to be."""


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


def read_verified(path: Path, *, expected_sha256: str) -> bytes:
    """The file's bytes, once their sha256 equals `expected_sha256`. Raises ArtifactError otherwise."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ArtifactError(f"Cannot read artifact {path}: {exc.strerror or exc}.") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256.strip().lower():
        raise ArtifactError(f"Artifact {path} has sha256 {actual}, expected {expected_sha256}: refusing to load it.")
    return data


def array_bytes(array: np.ndarray) -> bytes:
    """The `.npy` bytes of one plain array (no pickle)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def arrays_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The `.npz` bytes of plain arrays, with fixed timestamps: the same arrays always give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, mode="w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def load_array(data: bytes) -> np.ndarray:
    """One plain array from verified `.npy` bytes. Raises ArtifactError."""
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ArtifactError(f"not a plain .npy array: {exc}") from exc
    if not isinstance(array, np.ndarray):
        raise ArtifactError("not a single .npy array")
    return array


def load_arrays(data: bytes) -> dict[str, np.ndarray]:
    """The plain arrays of verified `.npz` bytes. Raises ArtifactError."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, AttributeError) as exc:
        raise ArtifactError(f"not an .npz archive of plain arrays: {exc}") from exc
