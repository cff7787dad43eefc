"""/metrics from the real web server (two web workers in Prometheus' multiprocess mode): after mixed traffic on
/v1 and /v2, the scrape's counts are the query log's, whichever worker answered each call and the scrape."""

import numpy as np
import pytest
import requests
from django.db.models import Sum
from prometheus_client.parser import text_string_to_metric_families

from serving.predictions.models import QueryLog
from serving.predictions.querylog import querylog_flush
from tests.processes import web_server
from tests.serving.predictions.test_api import key_on, natural_inputs
from tiers.models import Tier

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN = "live-scrape-token"


def _scrape(base_url: str) -> list:
    response = requests.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200
    return [sample for family in text_string_to_metric_families(response.text) for sample in family.samples]


def _sum(samples: list, name: str, **labels) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_a_scrape_counts_what_the_query_log_holds(registered_digits, tmp_path):
    Tier.objects.filter(code="free").update(requests_per_minute=12)
    keys = {code: key_on(code) for code in ("free", "pro", "enterprise")}
    rng = np.random.default_rng(3)
    rows = natural_inputs(40, seed=9)
    with web_server(log_path=tmp_path / "web.log", workers=2, extra_env={"METRICS_TOKEN": TOKEN}) as (base_url, _):
        assert requests.get(f"{base_url}/metrics", timeout=30).status_code == 404
        session = requests.Session()
        for call in range(30):
            tier = ("free", "pro", "enterprise")[call % 3]
            headers = {"Authorization": f"Bearer {keys[tier]}"}
            n = int(rng.integers(1, 6))
            batch = rows[call : call + n]
            if call % 2:
                body = {"inputs": [{"name": "input", "shape": [n, 64], "datatype": "FP32",
                                    "data": [v for row in batch for v in row]}]}  # fmt: skip
                session.post(f"{base_url}/v2/models/digits/infer", json=body, headers=headers, timeout=30)
            else:
                session.post(
                    f"{base_url}/v1/models/digits/predict", json={"inputs": batch}, headers=headers, timeout=30
                )
            if call % 5 == 0:  # a bad request now and then
                session.post(
                    f"{base_url}/v1/models/digits/predict", json={"inputs": [[1]]}, headers=headers, timeout=30
                )
        samples = _scrape(base_url)
        again = _scrape(base_url)  # whichever worker answers, the same sums

    querylog_flush()
    for tier in keys:
        logged = QueryLog.objects.filter(tier_code=tier)
        answered = _sum(samples, "moat_api_requests_total", tier=tier, status="200", route="predict") + _sum(
            samples, "moat_api_requests_total", tier=tier, status="200", route="v2_infer"
        )
        assert answered == logged.filter(endpoint="predict", status=200).count() > 0
        rows_billed = logged.filter(endpoint="predict", status=200).aggregate(n=Sum("batch_size"))["n"]
        assert _sum(samples, "moat_predictions_total", tier=tier) == rows_billed
        assert _sum(samples, "moat_api_requests_total", tier=tier, status="400") == logged.filter(status=400).count()
        refused = logged.filter(status=429).count()
        assert _sum(samples, "moat_api_requests_total", tier=tier, status="429") == refused
        assert _sum(samples, "moat_quota_refusals_total", tier=tier) == refused
    assert QueryLog.objects.filter(tier_code="free", status=429).exists()  # the free key outran its minute
    assert _sum(again, "moat_predictions_total") == _sum(samples, "moat_predictions_total")
    assert _sum(samples, "moat_api_request_duration_seconds_count") >= 30
