"""An extraction campaign against the real web server is frozen by the real jobs on a real Celery worker, and the
honest customer next to it is left alone: HTTP in, query log through Redis to PostgreSQL, beat's tasks, 403 out."""

import json
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from django.conf import settings

from abuse.models import AuditAction, AuditEntry, RiskAssessment, RiskState
from apikeys.models import ApiKey, KeyState
from config.celery_app import app
from serving.ml.digits import load_digits_split
from tests.abuse.live_helpers import platform_with_jobs, query_log_flushed, wait_for
from tests.factories import OrganizationFactory, member, raw_key_for
from tiers.models import Tier

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]


def _predict(base_url: str, key: str, rows: np.ndarray) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 - the loopback server this test started
        f"{base_url}/v1/models/digits/predict",
        data=json.dumps({"inputs": rows.astype(int).tolist()}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_uniform_random_campaign_is_frozen_by_the_jobs_and_the_honest_customer_is_not(registered_digits, tmp_path):
    # Rate limits are not under test here: let both customers send at full speed.
    Tier.objects.filter(code="pro").update(requests_per_minute=100_000, requests_per_hour=100_000)
    pro = Tier.objects.get(code="pro")
    thief = member(organization=OrganizationFactory(name="Copycat", tier=pro)).membership.organization
    honest = member(organization=OrganizationFactory(name="Museum", tier=pro)).membership.organization
    thief_key, honest_key = raw_key_for(thief), raw_key_for(honest)
    rng = np.random.default_rng(7)
    natural = load_digits_split(seed=0).X_test

    with platform_with_jobs(tmp_path) as base_url:
        for batch in range(12):
            assert _predict(base_url, thief_key, rng.integers(0, 17, (100, 64)))[0] == 200
            assert _predict(base_url, honest_key, natural[batch * 10 : batch * 10 + 10])[0] == 200
        app.send_task("predictions.flush_query_log")
        assert wait_for(query_log_flushed, seconds=10)
        app.send_task("abuse.refresh_signup_rings")
        app.send_task("abuse.assess_extraction_risk")

        assert wait_for(lambda: ApiKey.objects.filter(organization=thief, state=KeyState.FROZEN).exists(), seconds=30)
        # Every web process drops its copy of the key within API_KEY_CACHE_SECONDS: the thief is refused from then
        # on, by every worker, and the museum is not.
        time.sleep(settings.API_KEY_CACHE_SECONDS + 0.5)
        answers = [_predict(base_url, thief_key, natural[:1]) for _ in range(6)]
        assert [(status, body["error"]["code"]) for status, body in answers] == [(403, "key_frozen")] * 6
        assert _predict(base_url, honest_key, natural[200:210])[0] == 200
        assert wait_for(lambda: any((tmp_path / "mail").glob("*")), seconds=10)

    freeze = AuditEntry.objects.get(organization_id=thief.pk, action=AuditAction.FREEZE)
    assert freeze.actor_label == "abuse jobs"
    assert "Extraction risk" in freeze.reason
    assessment = RiskAssessment.objects.get(organization=thief)
    assert assessment.score >= 80 and assessment.queries == 1200
    assert {c["name"] for c in assessment.components} >= {"volume", "unnatural_inputs", "prada"}
    assert RiskState.objects.get(organization=honest).level == "normal"
    assert not ApiKey.objects.filter(organization=honest).exclude(state=KeyState.ACTIVE).exists()
    assert not AuditEntry.objects.filter(organization_id=honest.pk).exists()
    (mail_file,) = (tmp_path / "mail").glob("*")
    assert "Your Moat API keys are frozen" in mail_file.read_text()
    assert "/appeal/" in mail_file.read_text()
