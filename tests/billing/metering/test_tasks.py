from datetime import timedelta

from django.utils import timezone

from billing.metering.models import UsageDay
from billing.metering.tasks import aggregate_usage
from tests.billing.metering.helpers import log
from tests.factories import OrganizationFactory


def test_the_task_aggregates_today_and_yesterday_and_returns_the_row_count(organization):
    other = OrganizationFactory()
    now = timezone.now()
    log(organization, at=now - timedelta(minutes=1), batch_size=3)
    log(organization, at=now - timedelta(days=1), batch_size=2)
    log(other, at=now - timedelta(minutes=1), batch_size=5, tier_code="pro")

    assert aggregate_usage.apply().get() == 3
    assert aggregate_usage.apply().get() == 3  # a redelivery changes nothing

    assert sorted(UsageDay.objects.values_list("organization_id", "tier_code", "requests", "units")) == sorted(
        [(organization.pk, "free", 1, 3), (organization.pk, "free", 1, 2), (other.pk, "pro", 1, 5)]
    )


def test_the_task_is_named_bounded_and_safe_to_redeliver(db):
    assert aggregate_usage.name == "metering.aggregate_usage"
    assert (aggregate_usage.acks_late, aggregate_usage.reject_on_worker_lost) == (True, True)
    assert (aggregate_usage.time_limit, aggregate_usage.soft_time_limit) == (120, 100)
