"""Redis killed (kill -9) for 10 s under steady load and started again (a real redis-server of our own, with AOF).

The promise (serving/quotas/limiter.py): enterprise keys are served throughout under the per-process fallback and
never see a 5xx; public keys get 503 with Retry-After while Redis is away; exact limiting (the Lua script) is back
within 2 s of Redis answering again, with the fallback's calls charged to the counters; and every answered call is
recorded exactly once: answered == in the query log == in the usage rows == in the quota counters."""

import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from django.db.models import Sum

from accounts.models import Organization
from billing.metering.models import UsageDay
from billing.metering.services import usage_aggregate_day
from core.redis import redis_client
from serving.predictions.models import QueryLog
from serving.predictions.querylog import querylog_flush, querylog_pending
from serving.quotas.limiter import counter_keys
from tests.factories import OrganizationFactory, member, raw_key_for
from tests.faults.load import Load, first_success_after, predict_request, wait_until
from tests.processes import RedisServer, web_server
from tiers.models import Tier

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = 10
FALLBACK_FRACTION = 0.1


def _organization(tier: str) -> Organization:
    return member(organization=OrganizationFactory(tier=Tier.objects.get(code=tier))).membership.organization


def test_redis_killed_for_ten_seconds_under_load(registered_digits, tmp_path, settings):
    # Limits are far above the load: what is under test is who is served, and that every count is exact.
    Tier.objects.filter(code__in=["pro", "enterprise"]).update(
        requests_per_minute=60_000, requests_per_hour=1_000_000, requests_per_day=10_000_000
    )
    enterprise, public = _organization("enterprise"), _organization("pro")
    enterprise_key, public_key = raw_key_for(enterprise), raw_key_for(public)
    fallback_limit = str(int(60_000 * FALLBACK_FRACTION))  # X-RateLimit-Limit of an answer under the fallback
    (tmp_path / "redis").mkdir()
    redis_server = RedisServer(tmp_path / "redis").start()
    settings.REDIS_URL = redis_server.url  # this process flushes and inspects the same Redis as the web server
    env = {"REDIS_URL": redis_server.url, "QUOTA_FALLBACK_FRACTION": str(FALLBACK_FRACTION)}
    try:
        with web_server(log_path=tmp_path / "web.log", workers=2, extra_env=env) as (base_url, _):
            load = Load()
            load.add("enterprise", lambda: predict_request(base_url, enterprise_key), threads=2)
            load.add("public", lambda: predict_request(base_url, public_key, batch=2), threads=2)
            with load:
                wait_until(
                    lambda: all(any(o.status == 200 for o in found) for found in load.outcomes.values()),
                    timeout=20,
                    what="both keys served before the fault",
                )
                time.sleep(1)
                redis_server.kill()
                killed = time.monotonic()
                time.sleep(OUTAGE_SECONDS)
                restarting = time.monotonic()
                redis_server.start()  # the AOF brings back the counters and the unflushed query log
                back = time.monotonic()

                def exact(outcome) -> bool:
                    return outcome.status == 200 and outcome.headers["X-RateLimit-Limit"] != fallback_limit

                wait_until(
                    lambda: (
                        first_success_after(load.outcomes["public"], back) is not None
                        and any(exact(o) for o in load.outcomes["enterprise"] if o.started >= back)
                    ),
                    timeout=10,
                    what="exact limiting again for both keys",
                )
                time.sleep(2)
        querylog_flush()
        assert querylog_pending() == 0

        enterprise_seen, public_seen = load.outcomes["enterprise"], load.outcomes["public"]
        outage = [o for o in load.all() if killed <= o.started < restarting]
        resumed = {
            "public": first_success_after(public_seen, back),
            "enterprise": min(o.started for o in enterprise_seen if o.started >= back and exact(o)) - back,
        }
        answered = {
            organization.pk: [(o.headers["X-Request-Id"], batch) for o in seen if o.status == 200]
            for organization, seen, batch in ((enterprise, enterprise_seen, 1), (public, public_seen, 2))
        }
        print(
            f"\nRedis outage: {back - killed:.1f} s down; "
            f"enterprise {dict(Counter(o.status for o in enterprise_seen))}, "
            f"public {dict(Counter(o.status for o in public_seen))}; during the outage "
            f"{dict(Counter(o.status for o in outage))}; exact limiting back after "
            f"{', '.join(f'{k} {v:.2f} s' for k, v in resumed.items())}; slowest answer "
            f"{max(o.elapsed for o in load.all()):.3f} s; answered "
            f"{ {k: len(v) for k, v in answered.items()} }"
        )

        # Enterprise: never a 5xx, served through the outage.
        assert not [o for o in enterprise_seen if o.status >= 500 or o.status == 0]
        assert sum(1 for o in enterprise_seen if killed + 1.5 <= o.started < restarting and o.status == 200) > 50
        # Public: 503 with Retry-After while Redis is away, and nothing else but 200.
        public_outage = [o for o in public_seen if killed + 1.5 <= o.started < restarting]
        assert public_outage and {o.status for o in public_outage} == {503}, [
            (round(o.started - killed, 3), o.status, o.elapsed) for o in public_outage if o.status != 503
        ]
        for outcome in (o for o in public_seen if o.status == 503):
            assert int(outcome.headers["Retry-After"]) > 0
            assert outcome.json()["error"]["code"] == "service_unavailable"
        assert {o.status for o in public_seen} <= {200, 503}
        # Exact limiting within 2 s of Redis answering again.
        assert max(resumed.values()) < 2
        # Served == recorded, for each organization: the query log (0 lost, 0 twice), the usage rows, the counters.
        now = int(redis_client().time()[0])
        for organization_id, calls in answered.items():
            stored = list(
                QueryLog.objects.filter(organization_id=organization_id, endpoint="predict", status=200).values_list(
                    "request_id", "batch_size", "created_at"
                )
            )
            assert sorted(str(request_id) for request_id, _, _ in stored) == sorted(rid for rid, _ in calls)
            served_units = sum(units for _, units in calls)
            days = {created.date() for _, _, created in stored}
            for day in days:
                usage_aggregate_day(day=day)
            usage = UsageDay.objects.filter(organization_id=organization_id).aggregate(units=Sum("units"))["units"]
            assert usage == served_units
            _, prefix = counter_keys(organization_id=organization_id, key_id=0)
            for suffix, seconds in (("h", 3600), ("d", 86400)):
                in_window = sum(units for _, units, at in stored if int(at.timestamp()) // seconds == now // seconds)
                assert int(redis_client().get(f"{prefix}:{suffix}:{now // seconds}") or 0) == in_window
            month = datetime.now(UTC).strftime("%Y%m")
            assert int(redis_client().get(f"{prefix}:mo:{month}")) == served_units
    finally:
        redis_server.kill()
