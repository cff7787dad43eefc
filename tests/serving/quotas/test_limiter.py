"""Quotas through the API: every window, per key and per organization, batch costs, headers, the monthly stop,
throttle records, and the adaptive factor. Real Redis (the quota script) and PostgreSQL."""

import orjson
import pytest
from django.test import Client

from core.redis import redis_client
from serving.predictions.models import QueryLog
from serving.predictions.querylog import querylog_flush
from serving.quotas.limiter import counter_keys
from serving.quotas.services import InvalidThrottleFactorError, organization_set_throttle_factor
from tests.factories import OrganizationFactory, member, raw_key_for
from tiers.cache import tier_cache_clear
from tiers.models import Tier

pytestmark = pytest.mark.usefixtures("registered_digits")

ZERO = [0] * 64


def predict(key: str, n: int = 1):
    return Client().post(
        "/v1/models/digits/predict",
        orjson.dumps({"inputs": [ZERO] * n}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )


def set_limits(code: str, **limits) -> None:
    Tier.objects.filter(code=code).update(**limits)
    tier_cache_clear()


def organization_on(code: str):
    return member(organization=OrganizationFactory(tier=Tier.objects.get(code=code))).membership.organization


def error_code(response) -> str:
    return orjson.loads(response.content)["error"]["code"]


def month_key(organization) -> str:
    _, prefix = counter_keys(organization_id=organization.pk, key_id=0)
    (key,) = [k.decode() for k in redis_client().keys(f"{prefix}:mo:*")]
    return key


def test_the_per_minute_window_admits_exactly_the_limit_and_says_so_in_headers():
    set_limits("free", requests_per_minute=5)
    key = raw_key_for(organization_on("free"))

    answers = [predict(key) for _ in range(6)]

    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert [a["X-RateLimit-Remaining"] for a in answers[:5]] == ["4", "3", "2", "1", "0"]
    assert all(a["X-RateLimit-Limit"] == "5" for a in answers)
    assert all(0 < int(a["X-RateLimit-Reset"]) <= 60 for a in answers)
    refused = answers[-1]
    assert error_code(refused) == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "per-minute limit" in orjson.loads(refused.content)["error"]["message"]


@pytest.mark.parametrize(
    ("limits", "window"),
    [
        ({"requests_per_hour": 3}, "organization_hour"),
        ({"requests_per_day": 3}, "organization_day"),
        ({"key_requests_per_minute": 3}, "key_minute"),
        ({"key_requests_per_hour": 3}, "key_hour"),
        ({"key_requests_per_day": 3}, "key_day"),
    ],
)
def test_hour_and_day_windows_refuse_past_their_limit(limits, window):
    set_limits("free", **limits)
    organization = organization_on("free")
    key = raw_key_for(organization)

    assert [predict(key).status_code for _ in range(4)] == [200, 200, 200, 429]
    querylog_flush()
    throttled = QueryLog.objects.get(status=429)
    assert (throttled.limit_window, throttled.error_code, throttled.organization_id) == (
        window,
        "rate_limited",
        organization.pk,
    )


def test_many_keys_of_one_organization_share_its_limits():
    set_limits("free", requests_per_minute=4)
    organization = organization_on("free")
    first, second = raw_key_for(organization, name="a"), raw_key_for(organization, name="b")

    assert [predict(first).status_code for _ in range(3)] == [200, 200, 200]
    assert predict(second).status_code == 200
    refused = predict(second)

    assert refused.status_code == 429
    querylog_flush()
    assert QueryLog.objects.get(status=429).limit_window == "organization_minute"


def test_a_per_key_limit_binds_each_key_while_the_organization_keeps_its_own():
    set_limits("free", key_requests_per_minute=2, requests_per_minute=3)
    organization = organization_on("free")
    first, second = raw_key_for(organization, name="a"), raw_key_for(organization, name="b")

    assert [predict(first).status_code for _ in range(3)] == [200, 200, 429]
    assert [predict(second).status_code for _ in range(2)] == [200, 429]
    querylog_flush()
    assert list(QueryLog.objects.filter(status=429).order_by("created_at").values_list("limit_window", flat=True)) == [
        "key_minute",
        "organization_minute",
    ]


def test_another_organization_is_not_affected():
    set_limits("free", requests_per_minute=2)
    busy, calm = raw_key_for(organization_on("free")), raw_key_for(organization_on("free"))
    assert [predict(busy).status_code for _ in range(3)] == [200, 200, 429]
    assert predict(calm).status_code == 200


def test_a_batch_costs_its_size_and_a_batch_larger_than_what_remains_is_refused_whole():
    set_limits("free", requests_per_minute=10)
    organization = organization_on("free")
    key = raw_key_for(organization)

    assert predict(key, 7).status_code == 200
    refused = predict(key, 4)
    assert refused.status_code == 429 and refused["X-RateLimit-Remaining"] == "3"
    assert predict(key, 3).status_code == 200

    querylog_flush()
    served = QueryLog.objects.filter(status=200)
    assert sorted(served.values_list("batch_size", flat=True)) == [3, 7]
    assert QueryLog.objects.get(status=429).batch_size == 0  # refused: not served, not billed


def test_the_free_tier_stops_at_its_monthly_included_amount():
    organization = organization_on("free")
    key = raw_key_for(organization)
    assert predict(key).status_code == 200
    included = Tier.objects.get(code="free").monthly_included_requests
    redis_client().set(month_key(organization), included - 2)

    assert predict(key, 3).status_code == 429
    assert predict(key, 2).status_code == 200
    refused = predict(key)
    assert refused.status_code == 429
    assert "monthly included requests" in orjson.loads(refused.content)["error"]["message"]
    assert int(refused["Retry-After"]) > 60  # the month ends later than any shorter window


def test_paid_tiers_run_into_overage_rather_than_a_stop():
    organization = organization_on("pro")
    key = raw_key_for(organization)
    assert predict(key).status_code == 200
    included = Tier.objects.get(code="pro").monthly_included_requests
    redis_client().set(month_key(organization), included + 500)

    assert predict(key, 5).status_code == 200
    assert int(redis_client().get(month_key(organization))) == included + 505


def test_models_and_usage_calls_count_against_the_rate_windows_but_not_the_month():
    set_limits("free", requests_per_minute=3)
    organization = organization_on("free")
    key = raw_key_for(organization)
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}

    assert client.get("/v1/models", **headers).status_code == 200
    assert client.get("/v1/usage", **headers).status_code == 200
    assert predict(key).status_code == 200
    assert client.get("/v1/models", **headers).status_code == 429
    assert int(redis_client().get(month_key(organization))) == 1


def test_bad_requests_are_not_counted():
    set_limits("free", requests_per_minute=2)
    key = raw_key_for(organization_on("free"))
    for _ in range(5):
        bad = Client().post(
            "/v1/models/digits/predict", b"{}", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
        )
        assert bad.status_code == 400
    assert [predict(key).status_code for _ in range(3)] == [200, 200, 429]


def test_the_adaptive_factor_scales_the_limits_at_once_and_clearing_it_restores_them(
    django_capture_on_commit_callbacks,
):
    set_limits("free", requests_per_minute=8)
    organization = organization_on("free")
    key = raw_key_for(organization)
    with django_capture_on_commit_callbacks(execute=True):
        organization_set_throttle_factor(
            organization=organization, factor=0.25, reason="risk elevated", actor="abuse:risk"
        )

    answers = [predict(key) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0]["X-RateLimit-Limit"] == "2"
    organization.refresh_from_db()
    assert (organization.throttle_factor, organization.throttle_reason) == (0.25, "risk elevated")

    with django_capture_on_commit_callbacks(execute=True):
        organization_set_throttle_factor(organization=organization, factor=1.0, reason="", actor="staff:ana")
    assert predict(key).status_code == 200
    assert predict(key)["X-RateLimit-Limit"] == "8"


@pytest.mark.parametrize("factor", [0, -0.5, 1.5])
def test_a_throttle_factor_outside_0_to_1_is_refused(factor):
    organization = organization_on("free")
    with pytest.raises(InvalidThrottleFactorError):
        organization_set_throttle_factor(organization=organization, factor=factor, reason="x", actor="staff:x")
    organization.refresh_from_db()
    assert organization.throttle_factor == 1.0


def test_windows_follow_redis_time_not_the_web_process_clock(monkeypatch):
    """Skewing this process's clock by an hour changes nothing: buckets and resets come from Redis's TIME."""
    import time as time_module

    set_limits("free", requests_per_minute=2)
    key = raw_key_for(organization_on("free"))
    real_time = time_module.time
    monkeypatch.setattr(time_module, "time", lambda: real_time() + 3600)

    answers = [predict(key) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert 0 < int(answers[0]["X-RateLimit-Reset"]) <= 60


def test_staff_set_and_clear_the_factor_in_the_admin(admin_client, django_capture_on_commit_callbacks):
    set_limits("free", requests_per_minute=8)
    organization = organization_on("free")
    key = raw_key_for(organization)
    form = {
        "name": organization.name,
        "tier": organization.tier_id,
        "billing_state": organization.billing_state,
        "created_at_0": organization.created_at.strftime("%Y-%m-%d"),
        "created_at_1": organization.created_at.strftime("%H:%M:%S"),
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "throttle_factor": "0.25",
        "throttle_reason": "probing the boundary",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/accounts/organization/{organization.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    organization.refresh_from_db()
    assert organization.throttle_set_by.startswith("staff:")
    assert predict(key)["X-RateLimit-Limit"] == "2"

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            f"/admin/accounts/organization/{organization.pk}/change/",
            form | {"throttle_factor": "1", "throttle_reason": ""},
        )
    assert predict(key)["X-RateLimit-Limit"] == "8"


def test_an_organization_at_its_spend_cap_gets_402_on_billable_calls_until_the_flag_clears():
    from serving.quotas.services import organization_set_spend_capped

    organization = organization_on("pro")
    key = raw_key_for(organization)
    assert predict(key).status_code == 200
    period = month_key(organization).rsplit(":", 1)[1]
    organization_set_spend_capped(organization_id=organization.pk, period=period, capped=True)

    capped = predict(key)
    assert capped.status_code == 402 and error_code(capped) == "spend_cap_reached"
    assert Client().get("/v1/usage", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200  # still readable
    querylog_flush()
    assert QueryLog.objects.get(status=402).error_code == "spend_cap_reached"

    organization_set_spend_capped(organization_id=organization.pk, period=period, capped=False)
    assert predict(key).status_code == 200


def test_a_spend_cap_flag_of_an_earlier_period_is_ignored():
    from serving.quotas.services import organization_set_spend_capped

    organization = organization_on("pro")
    key = raw_key_for(organization)
    organization_set_spend_capped(organization_id=organization.pk, period="199901", capped=True)
    assert predict(key).status_code == 200
