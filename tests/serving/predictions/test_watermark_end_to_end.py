"""Ownership evidence end to end: a copy trained on our public API's answers reproduces our watermark regions'
classes and is flagged; a model trained independently on the same kind of data is not."""

import numpy as np
import orjson
import pytest
from django.conf import settings
from django.test import Client
from sklearn.datasets import load_digits

from serving.ml.mlp import forward_logits, train_mlp
from serving.registry.selectors import model_get, model_reference_codes
from serving.watermark import RegionWatermark
from serving.watermark_verification import verify_watermark
from tests.factories import OrganizationFactory, member, raw_key_for
from tests.serving.helpers import DIGITS
from tiers.models import Tier

pytestmark = pytest.mark.usefixtures("registered_digits")


def _query_api(key: str, inputs: np.ndarray) -> np.ndarray:
    labels = []
    for start in range(0, len(inputs), 100):
        response = Client().post(
            "/v1/models/digits/predict",
            orjson.dumps({"inputs": inputs[start : start + 100].tolist()}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
        )
        assert response.status_code == 200
        labels += [int(p["label"]) for p in orjson.loads(response.content)["predictions"]]
    return np.asarray(labels)


def _nearest_neighbour(train_x: np.ndarray, train_y: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """A 1-nearest-neighbour copy: the simplest model trained on the answers it bought."""
    distances = (queries**2).sum(axis=1)[:, None] + (train_x**2).sum(axis=1)[None, :] - 2.0 * queries @ train_x.T
    return train_y[distances.argmin(axis=1)]


def test_a_copy_trained_on_public_answers_is_flagged_and_an_independent_model_is_not(demo_run):
    # Rate limits are not under test here: let this thief buy its 3,000 answers in one go.
    Tier.objects.filter(code="pro").update(requests_per_minute=10_000, requests_per_hour=10_000)
    user = member(organization=OrganizationFactory(tier=Tier.objects.get(code="pro")))
    key = raw_key_for(user.membership.organization)
    digits = load_digits()
    rng = np.random.default_rng(11)
    # The thief's 3,000 queries: the natural digits plus uniformly random images.
    queries = np.vstack([digits.data, rng.integers(0, 17, size=(3000 - len(digits.data), 64))]).astype(float)
    answers = _query_api(key, queries)

    served = demo_run.classifier("digits", "defended")
    regions = RegionWatermark.fit(
        DIGITS,
        model_reference_codes(model=model_get(slug="digits")),
        secret=settings.WATERMARK_SECRET.encode(),
        n_classes=10,
    )

    def clean_labels(rows: np.ndarray) -> np.ndarray:
        return served.logits(DIGITS.values(rows)).argmax(axis=1)

    def verdict(suspect_labels: np.ndarray):
        return verify_watermark(
            DIGITS.codes(queries), suspect_labels, clean_label_fn=clean_labels, n_classes=10, watermark=regions
        )

    copy = verdict(_nearest_neighbour(queries, answers, queries))
    assert copy.regions >= 3  # evidence counts regions: answers within one are not independent
    assert copy.verdict and copy.p_value < 0.01

    independent_model = train_mlp(
        digits.data, digits.target, hidden=(32,), epochs=30, learning_rate=0.01, batch_size=64, l2=1e-4, seed=5,
        input_low=0.0, input_high=16.0,
    )  # fmt: skip
    independent = verdict(forward_logits(independent_model, queries).argmax(axis=1))
    assert independent.watermark_inputs == copy.watermark_inputs
    assert not independent.verdict and independent.p_value > 0.01
