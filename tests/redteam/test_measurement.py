"""What the measurement holds of a model: its held-out rows, the attacker's public rows (which trained nothing and
measure nothing), and none when the full model was trained on every row outside the held-out set."""

import numpy as np
import pytest

from redteam import measurement
from serving.ml.digits import load_digits_split
from serving.registry.models import ModelVersion

pytestmark = pytest.mark.django_db


def test_the_attackers_pool_is_the_public_digits_which_trained_nothing_and_measure_nothing(registered_digits):
    split = load_digits_split(seed=0)

    reference = measurement.load_reference("digits")

    assert np.array_equal(reference.pool, split.X_public) and np.array_equal(reference.pool_labels, split.y_public)
    assert np.array_equal(reference.heldout, split.X_test)
    pool = {row.tobytes() for row in reference.pool.astype(np.uint8)}
    assert not pool & {row.tobytes() for row in np.concatenate([split.X_train, split.X_test]).astype(np.uint8)}


def test_a_full_model_trained_on_every_digit_outside_the_held_out_rows_leaves_the_attacker_no_natural_data(
    registered_digits,
):
    full = registered_digits["full"]
    provenance = {key: value for key, value in full.provenance.items() if not key.startswith("public_")}
    ModelVersion.objects.filter(pk=full.pk).update(provenance=provenance)

    reference = measurement.load_reference("digits")

    assert reference.pool is None and reference.pool_labels is None
    assert measurement.baselines(reference)["public_labels_agreement"] is None


def test_a_model_with_nothing_to_measure_against_is_refused(registered_digits):
    with pytest.raises(RuntimeError, match="no model 'no-such-model'"):
        measurement.load_reference("no-such-model")
