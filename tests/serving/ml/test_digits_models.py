"""The demo models the `train_demo_model` command produced (trained once per session, see tests/serving/conftest)."""

import numpy as np
import pytest

from serving.ml.digits import load_digits_split
from serving.ml.digits_models import DEFENDED, train_variant, training_rows
from serving.ml.mlp import accuracy, forward_logits, softmax

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def split():
    return load_digits_split(seed=0)


def test_full_model_reaches_97_percent_on_the_held_out_rows(demo_run, split):
    full = demo_run.models.full

    assert accuracy(full.weights, split.X_test, split.y_test) >= 0.97
    assert full.metrics["holdout_accuracy"] == round(accuracy(full.weights, split.X_test, split.y_test), 6)
    assert full.weights.hidden == (256, 128) and full.weights.input_levels is None


def test_defended_model_is_smaller_coarser_lower_and_within_5_points(demo_run, split):
    full, defended = demo_run.models.full, demo_run.models.defended
    full_accuracy = accuracy(full.weights, split.X_test, split.y_test)
    defended_accuracy = accuracy(defended.weights, split.X_test, split.y_test)

    assert full_accuracy - 0.05 <= defended_accuracy < full_accuracy
    assert defended.weights.hidden == (192,) and defended.weights.input_levels == 4
    assert defended.metrics["training"]["distillation_temperature"] == 2.0


def test_both_models_learn_from_the_training_rows_and_their_variants_never_from_public_or_held_out_rows(split):
    X, y = training_rows(split, 9)

    assert X.shape == (10 * 1078, 64) and np.array_equal(y, np.tile(split.y_train, 10))
    assert np.array_equal(X[:1078], split.X_train)
    unseen = {row.tobytes() for row in np.concatenate([split.X_test, split.X_public]).astype(np.uint8)}
    assert not unseen & {row.tobytes() for row in X.astype(np.uint8)}
    assert np.array_equal(training_rows(split, 9)[0], X)  # the same variants for every model


def test_distilling_needs_the_teacher(split):
    with pytest.raises(ValueError, match="teacher"):
        train_variant(split, DEFENDED)


def test_the_distilled_model_answers_natural_digits_less_confidently_than_the_full_model(demo_run, split):
    full = softmax(forward_logits(demo_run.models.full.weights, split.X_test))
    defended = softmax(forward_logits(demo_run.models.defended.weights, split.X_test))

    assert defended.max(axis=1).mean() < full.max(axis=1).mean() - 0.05
    assert np.mean(defended.argmax(axis=1) == full.argmax(axis=1)) > 0.98


def test_agreement_with_full_is_the_share_of_held_out_rows_with_the_same_top1(demo_run, split):
    full_top1 = forward_logits(demo_run.models.full.weights, split.X_test).argmax(axis=1)
    defended_top1 = forward_logits(demo_run.models.defended.weights, split.X_test).argmax(axis=1)

    assert demo_run.models.defended.metrics["agreement_with_full"] == round(
        float(np.mean(full_top1 == defended_top1)), 6
    )
    assert demo_run.models.full.metrics["agreement_with_full"] == 1.0


def test_each_version_records_its_metrics_and_the_split_provenance(demo_run, split):
    for variant in (demo_run.models.full, demo_run.models.defended):
        assert {
            "holdout_accuracy",
            "holdout_rows",
            "train_accuracy",
            "hidden_layers",
            "epochs",
            "agreement_with_full",
        } <= (variant.metrics.keys())
        assert variant.metrics["holdout_rows"] == 450
        assert variant.metrics["hidden_layers"] == list(variant.weights.hidden)
        assert variant.provenance == split.provenance
