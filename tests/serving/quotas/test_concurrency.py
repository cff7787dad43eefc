"""Exactness under concurrency: against the real web server (two worker processes) and Redis, N simultaneous
requests against R remaining units admit exactly min(N, R), never more."""

import urllib.error
import urllib.request

import orjson
import pytest

from core.redis import redis_client
from serving.quotas.limiter import counter_keys
from tests.concurrency import simultaneously
from tests.factories import OrganizationFactory, member, raw_key_for
from tests.processes import web_server
from tiers.models import Tier

pytestmark = pytest.mark.django_db(transaction=True)


def _status(base_url: str, key: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - the loopback server this test started
        f"{base_url}/v1/models/digits/predict",
        data=orjson.dumps({"inputs": [[0] * 64]}),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _fire(base_url: str, key: str, count: int) -> list[int]:
    return simultaneously(lambda: _status(base_url, key), count)


@pytest.mark.parametrize(("requests", "remaining"), [(60, 23), (40, 100)])
def test_concurrent_requests_admit_exactly_min_of_requests_and_remaining(
    registered_digits, tmp_path, requests, remaining
):
    # Only the monthly stop binds here: the rate windows are opened wide.
    Tier.objects.filter(code="free").update(requests_per_minute=10_000, requests_per_hour=10_000)
    organization = member(organization=OrganizationFactory(tier=Tier.objects.get(code="free"))).membership.organization
    key = raw_key_for(organization)
    included = Tier.objects.get(code="free").monthly_included_requests

    with web_server(log_path=tmp_path / "web.log", workers=2) as (base_url, _):
        assert _status(base_url, key) == 200  # creates the month's counter
        _, prefix = counter_keys(organization_id=organization.pk, key_id=0)
        (month,) = redis_client().keys(f"{prefix}:mo:*")
        redis_client().set(month, included - remaining)

        statuses = _fire(base_url, key, requests)

    admitted = min(requests, remaining)
    assert sorted(statuses) == [200] * admitted + [429] * (requests - admitted)
    assert int(redis_client().get(month)) == included - remaining + admitted
