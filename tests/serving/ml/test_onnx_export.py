"""Moat's MLPs exported to ONNX compute what the numpy reference computes, deterministically."""

import hashlib

import numpy as np
import onnx
import pytest

from serving.inference import OnnxClassifier
from serving.input_schema import InputSchema
from serving.ml.mlp import forward_hidden, forward_logits, train_mlp
from serving.ml.onnx_export import GRAPH_BINDING, binding_for, mlp_to_onnx
from tests.serving.helpers import DIGITS, natural_rows, random_weights, tabular_schema


@pytest.mark.parametrize("input_levels", [None, 4])
def test_the_graph_answers_like_the_numpy_model_in_float32(input_levels):
    weights = random_weights(hidden=(16, 8), input_levels=input_levels)
    rows = DIGITS.values(natural_rows(200))
    classifier = OnnxClassifier.from_bytes(mlp_to_onnx(weights), GRAPH_BINDING, DIGITS)

    expected = forward_logits(weights, rows)
    assert np.abs(classifier.logits(rows) - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())
    assert np.array_equal(classifier.logits(rows).argmax(axis=1), expected.argmax(axis=1))
    assert np.abs(classifier.embedding(rows) - forward_hidden(weights, rows)[-2]).max() < 1e-4


def test_coarsening_maps_every_value_to_the_same_level_as_numpy_per_feature_bounds():
    schema = InputSchema.from_dict(tabular_schema(3, high=10.0))
    low, high = np.array([0.0, 2.0, 5.0]), np.array([10.0, 4.0, 6.0])
    X = np.random.default_rng(0).uniform(0, 10, (400, 3))
    weights = train_mlp(
        X, (X[:, 0] > 5).astype(np.int64), hidden=(8,), epochs=2, learning_rate=1e-2, batch_size=32, l2=0,
        seed=0, input_low=low, input_high=high, input_levels=5,
    )  # fmt: skip
    classifier = OnnxClassifier.from_bytes(mlp_to_onnx(weights), binding_for(weights), schema)

    assert np.array_equal(classifier.logits(X).argmax(axis=1), forward_logits(weights, X).argmax(axis=1))


def test_the_same_weights_always_give_the_same_bytes_and_a_valid_graph():
    first, second = mlp_to_onnx(random_weights()), mlp_to_onnx(random_weights())

    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()
    model = onnx.load_model_from_string(first)
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["x"]
    assert [o.name for o in model.graph.output] == ["logits", "embedding"]


def test_a_model_without_hidden_layers_has_no_embedding_output():
    weights = random_weights(hidden=())

    assert [o.name for o in onnx.load_model_from_string(mlp_to_onnx(weights)).graph.output] == ["logits"]
    assert binding_for(weights).embedding_output == ""
