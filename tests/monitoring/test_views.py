"""/metrics: only for the operator's scraper, in Prometheus' text format, counting what the API answered."""

import orjson
import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from abuse.models import AuditAction, AuditEntry, RiskState
from apikeys.services import apikeys_freeze_for_organization
from core.models import FailedTask
from tests.factories import OrganizationFactory
from tests.serving.predictions.test_api import key_on, natural_inputs

TOKEN = "scrape-token-for-tests"


def scrape(token: str | None = TOKEN) -> dict[tuple[str, tuple], float]:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    response = Client().get("/metrics", **headers)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN


@pytest.mark.django_db
@pytest.mark.parametrize("header", [None, "Bearer wrong", "Bearer ", f"Basic {TOKEN}"])
def test_anyone_without_the_token_gets_the_sites_ordinary_404(metrics_token, header):
    headers = {"HTTP_AUTHORIZATION": header} if header else {}
    for method in ("get", "post", "delete"):
        assert getattr(Client(), method)("/metrics", **headers).status_code == 404


@pytest.mark.django_db
def test_without_a_token_setting_metrics_are_off_for_everyone(settings):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def _value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.usefixtures("registered_digits")
def test_api_calls_are_counted_by_route_model_tier_and_status_never_by_who(metrics_token):
    before = scrape()
    key = key_on("pro")
    client = Client()
    for n in (3, 4):
        body = orjson.dumps({"inputs": natural_inputs(n)})
        client.post("/v1/models/digits/predict", data=body, content_type="application/json",
                    HTTP_AUTHORIZATION=f"Bearer {key}")  # fmt: skip
    client.post("/v1/models/not-a-model/predict", data=b"{}", content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {key}")  # fmt: skip
    after = scrape()

    def delta(name: str, **labels) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("moat_api_requests_total", route="predict", model="digits", tier="pro", status="200") == 2
    # What the caller typed never becomes a label: an unknown model is counted under model="".
    assert delta("moat_api_requests_total", route="predict", model="", tier="pro", status="404") == 1
    assert delta("moat_predictions_total", model="digits", tier="pro") == 7
    assert delta("moat_api_request_duration_seconds_count", route="predict", tier="pro") == 3
    text = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert "not-a-model" not in text and key not in text


@pytest.mark.django_db
def test_the_deployments_state_is_read_when_scraped(metrics_token, django_capture_on_commit_callbacks):
    from tests.factories import raw_key_for

    organization = OrganizationFactory()
    raw_key_for(organization)
    with django_capture_on_commit_callbacks(execute=True):
        apikeys_freeze_for_organization(organization_id=organization.pk, actor="abuse:test", reason="extraction")
    AuditEntry.objects.create(actor_label="abuse jobs", action=AuditAction.FREEZE, organization=organization,
                              reason="test")  # fmt: skip
    RiskState.objects.update_or_create(
        organization=organization, defaults={"score": 72, "assessed_at": "2026-12-01T00:00Z"}
    )
    FailedTask.objects.create(task_id="t-1", task_name="abuse.tasks.score", reason="failed", attempts=3)

    samples = scrape()
    assert _value(samples, "moat_frozen_api_keys") == 1
    assert _value(samples, "moat_abuse_actions_total", action="freeze") == 1
    assert _value(samples, "moat_celery_dead_letters") == 1
    assert _value(samples, "moat_risk_score_bucket", le="70") == 0
    assert _value(samples, "moat_risk_score_bucket", le="80") == 1
    assert _value(samples, "moat_risk_score_gcount") == 1
    assert _value(samples, "moat_state_source_up", source="postgresql") == 1
    assert _value(samples, "moat_state_source_up", source="redis") == 1
    assert _value(samples, "moat_querylog_backlog") == 0 and _value(samples, "moat_querylog_flush_lag_seconds") == 0


@pytest.mark.django_db
def test_celery_task_outcomes_are_counted_by_task_and_outcome(metrics_token, monkeypatch):
    from serving.predictions import tasks

    tasks.flush_query_log.apply()
    tasks.flush_query_log.apply()
    monkeypatch.setattr(tasks, "querylog_flush", lambda **_: 1 / 0)
    assert isinstance(tasks.flush_query_log.apply(throw=False).result, ZeroDivisionError)  # as a worker runs it

    samples = scrape()
    assert _value(samples, "moat_celery_tasks_total", task="predictions.flush_query_log", outcome="SUCCESS") == 2
    assert _value(samples, "moat_celery_tasks_total", task="predictions.flush_query_log", outcome="FAILURE") == 1
