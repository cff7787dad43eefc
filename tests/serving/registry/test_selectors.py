"""Registry reads: a model's watermark regions come from its stored reference data under the server's secret, and
each watermarking tier's honest cost is measured on them."""

import numpy as np
import pytest
from django.conf import settings

from serving.registry.selectors import (
    model_reference_codes,
    model_schema,
    model_watermark,
    model_watermark_calibrations,
)
from serving.watermark import RegionWatermark
from tests.serving.helpers import create_model, tabular_schema

pytestmark = pytest.mark.django_db


def test_a_models_watermark_is_fitted_on_its_reference_data_under_the_servers_secret(model_artifact_dir):
    model = create_model()
    reference = model_reference_codes(model=model)
    expected = RegionWatermark.fit(
        model_schema(model=model), reference, secret=settings.WATERMARK_SECRET.encode(), n_classes=10
    )

    watermark = model_watermark(model=model)

    assert np.array_equal(watermark.regions(reference, 10).keys, expected.regions(reference, 10).keys)
    assert np.array_equal(model_watermark(model=model, reference=reference).cells(reference), expected.cells(reference))


def test_another_secret_draws_other_regions(model_artifact_dir):
    model = create_model()
    reference = model_reference_codes(model=model)

    ours = model_watermark(model=model).regions(reference, 10).keys
    theirs = model_watermark(model=model, secret=b"another server's secret").regions(reference, 10).keys

    assert not np.array_equal(ours, theirs)


def test_each_watermarking_tier_gets_its_honest_cost_measured_on_the_reference_and_held_out_data(model_artifact_dir):
    rows = np.random.default_rng(0).integers(0, 1000, (200, 4)) / 100
    model = create_model(
        slug="churn",
        schema=tabular_schema(4),
        classes=["stays", "leaves"],
        reference=rows[:150],
        heldout=(rows[150:], np.arange(50) % 2),
    )

    calibrations = model_watermark_calibrations(model=model)

    assert [c.tier_code for c in calibrations] == ["free", "pro"]  # enterprise is never watermarked
    for found in calibrations:
        assert found.calibration.reference_share <= found.calibration.fraction
        assert found.calibration.heldout_share is not None
        assert 0.0 < found.calibration.threshold <= found.calibration.fraction
