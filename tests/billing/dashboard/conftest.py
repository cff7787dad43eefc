from datetime import date

import pytest
from django.utils import timezone

from accounts.models import Organization
from billing.metering.models import UsageDay
from serving.predictions.selectors import billing_period


def usage(organization: Organization, day: date, units: int, *, tier_code: str | None = None) -> UsageDay:
    """A usage row as the metering aggregation would leave it (requests: one call per 10 inputs)."""
    return UsageDay.objects.create(
        organization=organization,
        day=day,
        tier_code=tier_code or organization.tier.code,
        requests=max(1, units // 10),
        units=units,
    )


@pytest.fixture
def period_start() -> date:
    """The first day of the current billing period (what the dashboard shows)."""
    return billing_period(now=timezone.now())[0].date()
