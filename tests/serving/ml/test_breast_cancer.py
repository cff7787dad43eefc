"""The breast-cancer demo: its split follows the digits demo's rule, its schema holds every row of the data on a
grid finer than the data's own precision, and its full model is a logistic regression that onnxruntime serves."""

import numpy as np
import pytest

from serving.inference import FLAT, GraphBinding, OnnxClassifier
from serving.input_schema import InputSchema
from serving.ml.breast_cancer import input_schema, load_split, train_full_model_onnx


@pytest.fixture(scope="module")
def split():
    return load_split()


@pytest.fixture(scope="module")
def schema():
    return InputSchema.from_dict(input_schema())


def test_the_split_sets_aside_held_out_and_public_rows_per_class(split):
    assert split.provenance["rows"] == 569
    sizes = (split.y_train.size, split.y_test.size, split.y_public.size)
    assert (split.provenance["train_rows"], split.provenance["test_rows"], split.provenance["public_rows"]) == sizes
    assert sum(sizes) == 569
    assert split.y_test.size == 142
    # Stratified: each part keeps the data's share of malignant cases (212 of 569) to within a row per class.
    for part in (split.y_test, split.y_public):
        assert abs(np.mean(part == 0) - 212 / 569) < 2 / part.size
    assert split.class_labels == ["malignant", "benign"]
    assert len(split.feature_names) == 30


def test_the_schema_is_tabular_with_every_row_of_the_data_inside_its_bounds(schema, split):
    assert not schema.is_image
    assert schema.n_features == 30
    every_row = np.concatenate([split.X_train, split.X_test, split.X_public])
    assert not schema.out_of_bounds(every_row).any()


def test_the_grid_keeps_four_significant_digits_of_each_feature(schema, split):
    every_row = np.concatenate([split.X_train, split.X_test, split.X_public])

    recovered = schema.values(schema.codes(every_row))

    largest = every_row.max(axis=0)
    assert np.all(np.abs(recovered - every_row).max(axis=0) <= largest * 1e-3 / 2 + 1e-12)
    assert schema.row_bytes == 60  # 2-byte codes: every feature has at most 65,536 levels


def test_the_full_model_is_a_logistic_regression_served_by_onnxruntime(schema, split):
    binding = GraphBinding(
        input_name="input", input_layout=FLAT, output_name="probabilities", output_kind="probabilities"
    )
    classifier = OnnxClassifier.from_bytes(train_full_model_onnx(split), binding, schema)

    logits = classifier.logits(schema.values(schema.codes(split.X_test)))

    assert logits.shape == (142, 2)
    assert np.mean(logits.argmax(axis=1) == split.y_test) > 0.95
