"""Artifact files: verified by sha256 before they are read, written atomically, never unpickled."""

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from serving.ml.artifacts import (
    ArtifactError,
    array_bytes,
    arrays_bytes,
    load_array,
    load_arrays,
    read_verified,
    write_file_atomically,
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_verified_read_returns_exactly_the_bytes_it_hashed(tmp_path):
    path = tmp_path / "m.onnx"
    write_file_atomically(path, b"graph bytes")

    assert read_verified(path, expected_sha256=_sha(b"graph bytes").upper()) == b"graph bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no .part left behind


def test_a_sha256_mismatch_or_a_missing_file_is_refused(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"tampered")

    with pytest.raises(ArtifactError, match="refusing to load it"):
        read_verified(path, expected_sha256=_sha(b"original"))
    with pytest.raises(ArtifactError, match="Cannot read"):
        read_verified(tmp_path / "absent.onnx", expected_sha256=_sha(b""))


def test_a_failed_write_leaves_neither_a_part_file_nor_a_changed_target(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    write_file_atomically(path, b"first")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_file_atomically(path, b"second")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    assert path.read_bytes() == b"first"


def test_arrays_round_trip_and_the_same_arrays_give_the_same_bytes():
    arrays = {"inputs": np.arange(12, dtype=np.uint16).reshape(3, 4), "labels": np.array([0, 2, 1])}

    assert arrays_bytes(arrays) == arrays_bytes({name: value.copy() for name, value in arrays.items()})
    loaded = load_arrays(arrays_bytes(arrays))
    assert loaded.keys() == arrays.keys() and all(np.array_equal(loaded[k], arrays[k]) for k in arrays)
    assert np.array_equal(load_array(array_bytes(arrays["inputs"])), arrays["inputs"])


class _Payload:
    """Unpickling this would create a file: proof of whether a loader ran pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_object_arrays_and_pickles_are_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    with open(tmp_path / "objects.npy", "wb") as file:
        np.save(file, np.array([_Payload(marker)], dtype=object), allow_pickle=True)

    with pytest.raises(ArtifactError, match="plain"):
        load_array((tmp_path / "objects.npy").read_bytes())
    with pytest.raises(ArtifactError, match="plain"):
        load_arrays(pickle.dumps({"inputs": _Payload(marker)}))
    with pytest.raises(ArtifactError, match="single"):
        load_array(arrays_bytes({"a": np.zeros(2), "b": np.zeros(2)}))
    assert not marker.exists()
