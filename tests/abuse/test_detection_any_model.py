"""Detection with no code per model: a model an operator registers (here a gradient-boosted ensemble on the 13
measurements of scikit-learn's wine data, a schema neither demo has) gets its reference profile from its registered
data, and the real jobs on a real Celery worker freeze a uniform-random campaign against it through the real web server,
while an honest customer sending natural wine measurements is left alone."""

import time

import numpy as np
import pytest
import requests
from django.conf import settings

from abuse.extraction import InputProfile
from abuse.models import AuditEntry, RiskAssessment, RiskState
from apikeys.models import ApiKey, KeyState
from config.celery_app import app
from serving.registry.models import ModelVersion
from tests.abuse.live_helpers import platform_with_jobs, query_log_flushed, wait_for
from tests.factories import OrganizationFactory, member, raw_key_for
from tests.operator_models import WINE_SLUG, register_wine_cultivar
from tiers.models import Tier

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]

SLUG = WINE_SLUG


@pytest.fixture
def wine_model(tmp_path) -> dict:
    return register_wine_cultivar(tmp_path)


def _predict(base_url: str, key: str, rows: np.ndarray) -> int:
    response = requests.post(
        f"{base_url}/v1/models/{SLUG}/predict",
        json={"inputs": np.round(rows, 2).tolist()},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    return response.status_code


def test_an_operators_model_gets_detection_with_no_code_change(wine_model, tmp_path):
    Tier.objects.filter(code="pro").update(requests_per_minute=100_000, requests_per_hour=100_000)
    pro = Tier.objects.get(code="pro")
    thief = member(organization=OrganizationFactory(name="Copycat", tier=pro)).membership.organization
    honest = member(organization=OrganizationFactory(name="Vineyard", tier=pro)).membership.organization
    thief_key, honest_key = raw_key_for(thief), raw_key_for(honest)
    rng = np.random.default_rng(11)
    natural, high = wine_model["natural"], wine_model["high"]

    with platform_with_jobs(tmp_path) as base_url:
        for _ in range(12):
            assert _predict(base_url, thief_key, rng.uniform(0, high, (100, high.size))) == 200
            # A lab's measurements of new wines: natural rows, each re-measured with a little instrument noise.
            rows = natural[rng.integers(0, natural.shape[0], 10)]
            assert _predict(base_url, honest_key, rows * rng.normal(1.0, 0.01, rows.shape)) == 200
        app.send_task("predictions.flush_query_log")
        assert wait_for(query_log_flushed, seconds=10)
        app.send_task("abuse.assess_extraction_risk")

        assert wait_for(lambda: ApiKey.objects.filter(organization=thief, state=KeyState.FROZEN).exists(), seconds=60)
        time.sleep(settings.API_KEY_CACHE_SECONDS + 0.5)
        assert _predict(base_url, thief_key, natural[:1]) == 403
        assert _predict(base_url, honest_key, natural[:10]) == 200

    # The profile was fitted by the job from what the operator registered, in standardised measurements.
    stored = ModelVersion.objects.get(model__slug=SLUG, variant="full").input_profile
    profile = InputProfile.from_dict(stored)
    assert profile.space.components is None and not np.allclose(profile.space.scale, 1.0)
    assessment = RiskAssessment.objects.get(organization=thief)
    assert assessment.score >= settings.ABUSE_FREEZE_SCORE
    reasons = {c["name"]: c["points"] for c in assessment.components}
    assert reasons["unnatural_inputs"] > 0 and reasons["input_entropy"] > 0
    assert RiskState.objects.get(organization=honest).level == "normal"
    assert RiskState.objects.get(organization=honest).score < settings.ABUSE_THROTTLE_SCORE
    assert not ApiKey.objects.filter(organization=honest).exclude(state=KeyState.ACTIVE).exists()
    assert not AuditEntry.objects.filter(organization_id=honest.pk).exists()
