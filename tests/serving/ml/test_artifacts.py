"""Artifacts: atomic writes, sha256 before parsing, format version, shapes, and no pickles."""

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from serving.ml.artifacts import FORMAT_VERSION, ArtifactError, load_artifact, read_artifact, save_artifact
from serving.ml.mlp import forward_logits
from tests.serving.helpers import DIGIT_LABELS, random_weights, valid_arrays, write_npz


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(tmp_path: Path, arrays: dict[str, np.ndarray]) -> tuple[Path, str]:
    path = tmp_path / "model.npz"
    write_npz(path, arrays)
    return path, _sha(path)


@pytest.mark.parametrize("input_levels", [None, 4])
def test_round_trip_gives_the_same_model(tmp_path, input_levels):
    weights = random_weights(hidden=(8, 6), input_levels=input_levels)
    path = tmp_path / "m.npz"

    sha = save_artifact(path, weights, class_labels=DIGIT_LABELS)
    artifact = read_artifact(path, expected_sha256=sha)
    loaded = load_artifact(path, expected_sha256=sha)

    assert sha == _sha(path)
    assert artifact.class_labels == tuple(DIGIT_LABELS) and artifact.sha256 == sha
    assert loaded.input_scale == weights.input_scale and loaded.input_levels == input_levels
    for a, b in zip(loaded.weights + loaded.biases, weights.weights + weights.biases, strict=True):
        assert np.array_equal(a, b)
    x = np.random.default_rng(0).integers(0, 17, size=(5, 64)).astype(float)
    assert np.array_equal(forward_logits(loaded, x), forward_logits(weights, x))


def test_the_file_has_the_documented_layout_with_unicode_labels(tmp_path):
    path = tmp_path / "m.npz"
    save_artifact(path, random_weights(hidden=(8,)), class_labels=DIGIT_LABELS)

    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(
            ["format_version", "n_layers", "W0", "W1", "b0", "b1", "input_scale", "input_levels", "class_labels"]
        )
        assert npz["format_version"].shape == () and int(npz["format_version"]) == FORMAT_VERSION
        assert int(npz["n_layers"]) == 2 and int(npz["input_levels"]) == -1
        assert npz["class_labels"].dtype.kind == "U"
        assert npz["class_labels"].tolist() == DIGIT_LABELS


def test_the_same_model_always_gives_the_same_bytes(tmp_path):
    weights = random_weights()

    assert save_artifact(tmp_path / "a.npz", weights, class_labels=DIGIT_LABELS) == save_artifact(
        tmp_path / "b.npz", weights, class_labels=DIGIT_LABELS
    )


def test_an_artifact_written_by_plain_numpy_savez_loads(tmp_path):
    path, sha = _write(tmp_path, valid_arrays())

    assert load_artifact(path, expected_sha256=sha).n_outputs == 10


def test_no_part_file_is_left_behind(tmp_path):
    save_artifact(tmp_path / "m.npz", random_weights(), class_labels=DIGIT_LABELS)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_a_failed_write_leaves_neither_a_part_file_nor_a_changed_target(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    sha = save_artifact(path, random_weights(seed=1), class_labels=DIGIT_LABELS)

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_artifact(path, random_weights(seed=2), class_labels=DIGIT_LABELS)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    assert _sha(path) == sha


def test_a_sha256_mismatch_is_refused_before_parsing(tmp_path):
    path = tmp_path / "m.npz"
    save_artifact(path, random_weights(), class_labels=DIGIT_LABELS)

    with pytest.raises(ArtifactError, match="sha256"):
        load_artifact(path, expected_sha256="0" * 64)


def test_a_tampered_file_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    sha = save_artifact(path, random_weights(), class_labels=DIGIT_LABELS)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(ArtifactError, match="sha256"):
        load_artifact(path, expected_sha256=sha)


@pytest.mark.parametrize("version", [0, 2, 99])
def test_a_wrong_format_version_is_refused(tmp_path, version):
    path, sha = _write(tmp_path, valid_arrays() | {"format_version": np.array(version)})

    with pytest.raises(ArtifactError, match=f"format version {version}"):
        load_artifact(path, expected_sha256=sha)


class _Payload:
    """Unpickling this would create a file: proof of whether a loader ran pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_an_object_array_inside_the_npz_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    arrays = valid_arrays() | {"class_labels": np.array([_Payload(marker)] * 10, dtype=object)}
    path, sha = _write(tmp_path, arrays)

    with pytest.raises(ArtifactError, match="plain arrays"):
        load_artifact(path, expected_sha256=sha)
    assert not marker.exists()


def test_a_pickle_file_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps({"W0": _Payload(marker)}))

    with pytest.raises(ArtifactError, match="not a valid npz"):
        load_artifact(path, expected_sha256=_sha(path))
    assert not marker.exists()


def test_object_dtype_labels_are_refused_even_when_numpy_could_store_them_without_pickle(tmp_path):
    # A bare .npy holding one array is not an archive either.
    path = tmp_path / "model.npz"
    with open(path, "wb") as file:
        np.save(file, np.zeros((64, 10)))

    with pytest.raises(ArtifactError, match="single array"):
        load_artifact(path, expected_sha256=_sha(path))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"W0": np.zeros((63, 4))}, "does not fit|takes 63 inputs"),
        ({"W1": np.zeros((4, 9)), "b1": np.zeros(9)}, "9 outputs but 10 class labels"),
        ({"W1": np.zeros((5, 10))}, "takes 5 inputs but layer 0 gives 4"),
        ({"b0": np.zeros(3)}, "do not fit"),
        ({"n_layers": np.array(3)}, "lacks"),
        ({"n_layers": np.array(10**9)}, "declares 1000000000 layers"),
        ({"n_layers": np.array(0)}, "declares 0 layers"),
        ({"extra": np.zeros(1)}, "unexpected entries"),
        ({"W0": np.zeros((64, 4), dtype=np.int64)}, "float array"),
        ({"W0": np.full((64, 4), np.nan)}, "non-finite"),
        ({"input_scale": np.array(0.0)}, "input_scale"),
        ({"input_scale": np.array([1.0, 2.0])}, "scalar"),
        ({"input_levels": np.array(1)}, "input_levels"),
        ({"class_labels": np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])}, "unicode"),
        ({"class_labels": np.array([["0", "1"]] * 5)}, "1-D"),
    ],
)
def test_inconsistent_contents_are_refused(tmp_path, change, message):
    path, sha = _write(tmp_path, valid_arrays() | change)

    with pytest.raises(ArtifactError, match=message):
        load_artifact(path, expected_sha256=sha)


@pytest.mark.parametrize("missing", ["format_version", "n_layers", "input_scale", "input_levels", "class_labels"])
def test_missing_entries_are_refused(tmp_path, missing):
    arrays = valid_arrays()
    del arrays[missing]
    path, sha = _write(tmp_path, arrays)

    with pytest.raises(ArtifactError, match=missing):
        load_artifact(path, expected_sha256=sha)


def test_the_expected_input_width_is_checked(tmp_path):
    path, sha = _write(tmp_path, valid_arrays())

    with pytest.raises(ArtifactError, match="takes 64 inputs; the model takes 32"):
        load_artifact(path, expected_sha256=sha, expected_inputs=32)


def test_a_missing_file_or_garbage_is_an_artifact_error(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all")

    with pytest.raises(ArtifactError, match="Cannot read"):
        load_artifact(tmp_path / "absent.npz", expected_sha256="0" * 64)
    with pytest.raises(ArtifactError, match="not a valid npz"):
        load_artifact(garbage, expected_sha256=_sha(garbage))


def test_saving_with_the_wrong_number_of_labels_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="10 outputs but 3 class labels"):
        save_artifact(tmp_path / "m.npz", random_weights(), class_labels=["a", "b", "c"])
    assert list(tmp_path.iterdir()) == []
