"""The attacker's copies: targets built from answers, and training that fits them."""

import numpy as np
import pytest

from redteam.copies import LOGITS, SOFT, CopyRecipe, logit_targets, predict_labels, soft_targets, train_copy
from serving.ml.mlp import MLPWeights, forward_logits, softmax

BOUNDS = (0.0, 16.0)  # the digits' intensities, as the API publishes them
QUICK = CopyRecipe(hidden=(32,), epochs=50, learning_rate=5e-3, batch_size=32, l2=0.0, min_steps=300, max_steps=600)


def test_soft_targets_put_the_confidence_on_the_label_and_spread_the_rest():
    targets = soft_targets(np.array([2, 0]), np.array([0.7, 0.0]), n_classes=4)
    assert targets[0].tolist() == pytest.approx([0.1, 0.1, 0.7, 0.1])
    # A rounded "0.0" cannot be a top-1 confidence: it is read as the 1/10 floor.
    assert targets[1].tolist() == pytest.approx([0.1, 0.3, 0.3, 0.3])
    assert targets.sum(axis=1) == pytest.approx([1.0, 1.0])


def test_logit_targets_recover_the_logits_up_to_a_constant_per_row():
    logits = np.array([[3.0, -1.0, 0.5], [10.0, 9.0, -40.0]])
    recovered = logit_targets(softmax(logits))
    assert recovered == pytest.approx(logits - logits.mean(axis=1, keepdims=True))
    # An underflowed probability of exactly 0 stays finite.
    assert np.isfinite(logit_targets(np.array([[1.0, 0.0]]))).all()


def _teacher() -> MLPWeights:
    rng = np.random.default_rng(3)
    return MLPWeights(
        weights=(rng.normal(0, 0.3, (64, 16)), rng.normal(0, 0.5, (16, 10))),
        biases=(np.zeros(16), np.zeros(10)),
        input_low=0.0,
        input_high=16.0,
    )


@pytest.mark.parametrize("kind", [SOFT, LOGITS])
def test_a_copy_trained_on_a_models_answers_agrees_with_it(kind):
    teacher = _teacher()
    rng = np.random.default_rng(0)
    X, X_new = rng.integers(0, 17, (600, 64)), rng.integers(0, 17, (300, 64))
    logits = forward_logits(teacher, X)
    if kind == SOFT:
        targets = soft_targets(logits.argmax(axis=1), softmax(logits).max(axis=1), n_classes=10)
    else:
        targets = logit_targets(softmax(logits))
    copy = train_copy(X, targets, kind=kind, recipe=QUICK, bounds=BOUNDS, seed=1)
    agreement = np.mean(predict_labels(copy, X_new) == forward_logits(teacher, X_new).argmax(axis=1))
    assert agreement > 0.7
    assert copy.hidden == (32,)
    same = train_copy(X, targets, kind=kind, recipe=QUICK, bounds=BOUNDS, seed=1)
    assert np.array_equal(copy.weights[0], same.weights[0])  # deterministic for a seed


def test_train_copy_refuses_an_unknown_kind_or_mismatched_shapes():
    with pytest.raises(ValueError):
        train_copy(np.zeros((2, 64)), np.zeros((2, 10)), kind="labels", recipe=QUICK, bounds=BOUNDS)
    with pytest.raises(ValueError):
        train_copy(np.zeros((2, 64)), np.zeros((3, 10)), kind=SOFT, recipe=QUICK, bounds=BOUNDS)
