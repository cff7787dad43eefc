"""Spend caps, the usage-alert sweep (once per threshold per period) and the spend-cap selector."""

import threading
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from accounts.models import Role
from billing.dashboard.errors import SpendCapInvalidError
from billing.dashboard.models import SpendCap, UsageAlert
from billing.dashboard.selectors import (
    CHART_HEIGHT,
    CHART_WIDTH,
    active_alert_banner,
    spend_cap_reached_organizations,
    usage_bars,
)
from billing.dashboard.services import spend_cap_set, usage_alerts_send
from billing.dashboard.tasks import send_usage_alerts
from tests.billing.dashboard.conftest import usage
from tests.factories import member
from tiers.models import Tier

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
NEXT_MONTH = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


# --- spend_cap_set ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_spend_cap_set_creates_updates_and_clears(organization, owner):
    spend_cap_set(organization=organization, monthly_cap=Decimal("10.00"), actor=owner)
    spend_cap_set(organization=organization, monthly_cap=Decimal("25.50"), actor=owner)
    assert list(SpendCap.objects.values_list("organization_id", "monthly_cap", "set_by_id")) == [
        (organization.pk, Decimal("25.50"), owner.pk)
    ]
    spend_cap_set(organization=organization, monthly_cap=None, actor=owner)
    assert not SpendCap.objects.exists()
    spend_cap_set(organization=organization, monthly_cap=None, actor=owner)  # clearing twice is fine


@pytest.mark.django_db
@pytest.mark.parametrize("cap", [Decimal("0"), Decimal("-1")])
def test_spend_cap_must_be_positive(organization, owner, cap):
    with pytest.raises(SpendCapInvalidError, match=r"^A spend cap must be positive\.$"):
        spend_cap_set(organization=organization, monthly_cap=cap, actor=owner)
    assert not SpendCap.objects.exists()


# --- spend_cap_reached_organizations ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_spend_cap_reached_at_and_above_the_cap(organization, other_owner):
    pro = Tier.objects.get(code="pro")
    organization.tier = pro
    organization.save()
    other = other_owner.membership.organization
    other.tier = pro
    other.save()
    # pro: $49 base + $0.50 per 1,000 above 1,000,000. 1,002,000 units -> $50.00.
    usage(organization, date(2026, 11, 2), 1_002_000)
    usage(other, date(2026, 11, 2), 1_002_000)
    usage(other, date(2026, 10, 30), 9_000_000)  # last period: does not count
    SpendCap.objects.create(organization=organization, monthly_cap=Decimal("50.00"))  # exactly reached
    SpendCap.objects.create(organization=other, monthly_cap=Decimal("50.01"))  # a cent short
    unc = member(email="nocap@example.com").membership.organization  # no cap: never in the set
    usage(unc, date(2026, 11, 2), 10**9)
    assert spend_cap_reached_organizations(now=NOW) == {organization.pk}
    # A new period starts from the base price again.
    assert spend_cap_reached_organizations(now=NEXT_MONTH) == set()


@pytest.mark.django_db
def test_spend_cap_below_the_base_price_is_reached_at_once(organization):
    organization.tier = Tier.objects.get(code="pro")
    organization.save()
    SpendCap.objects.create(organization=organization, monthly_cap=Decimal("10.00"))
    assert spend_cap_reached_organizations(now=NOW) == {organization.pk}


# --- usage_alerts_send -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_alerts_go_out_once_per_threshold_per_period(organization, owner, settings):
    settings.SITE_URL = "https://moat.example"
    second_owner = member(organization=organization, email="second@example.com")
    member(organization=organization, role=Role.MEMBER, email="member@example.com")
    usage(organization, date(2026, 11, 1), 14_999)  # 30,000 included on free: just under 50%
    assert usage_alerts_send(now=NOW) == 0

    usage(organization, date(2026, 11, 2), 1)  # exactly 50%
    assert usage_alerts_send(now=NOW) == 1
    assert usage_alerts_send(now=NOW) == 0  # run twice: one email
    (message,) = mail.outbox
    assert message.to == [owner.email, second_owner.email]
    assert message.subject == f"Moat: {organization.name} has used 50% of its included requests"
    assert "has used 15,000 of the 30,000 inputs included in its Free plan this month (50%)" in message.body
    assert "https://moat.example/billing/" in message.body

    usage(organization, date(2026, 11, 3), 9_000)  # 24,000: 80%
    assert usage_alerts_send(now=NOW) == 1
    usage(organization, date(2026, 11, 4), 6_000)  # 30,000: 100%
    assert usage_alerts_send(now=NOW) == 1
    assert usage_alerts_send(now=NOW) == 0
    assert [m.subject.split(" has used ")[1] for m in mail.outbox] == [
        "50% of its included requests",
        "80% of its included requests",
        "100% of its included requests",
    ]
    assert "the API refuses further requests until the period ends" in mail.outbox[-1].body
    assert sorted(UsageAlert.objects.values_list("period", "threshold")) == [
        ("202611", 50),
        ("202611", 80),
        ("202611", 100),
    ]

    # A new period: the counters start over, and crossing again sends again.
    usage(organization, date(2026, 12, 1), 15_000)
    assert usage_alerts_send(now=NEXT_MONTH) == 1
    assert usage_alerts_send(now=NEXT_MONTH) == 0
    assert len(mail.outbox) == 4
    assert UsageAlert.objects.filter(period="202612").count() == 1


@pytest.mark.django_db
def test_a_jump_records_every_threshold_and_sends_one_email(organization):
    usage(organization, date(2026, 11, 1), 27_000)  # 90%: 50 and 80 at once
    assert usage_alerts_send(now=NOW) == 1
    (message,) = mail.outbox
    assert "80%" in message.subject
    assert sorted(UsageAlert.objects.values_list("threshold", flat=True)) == [50, 80]


@pytest.mark.django_db
def test_alerts_are_per_organization(organization, other_owner):
    usage(organization, date(2026, 11, 1), 15_000)
    usage(other_owner.membership.organization, date(2026, 11, 1), 100)
    assert usage_alerts_send(now=NOW) == 1
    assert [m.to for m in mail.outbox] == [[organization.memberships.get().user.email]]


@pytest.mark.django_db
def test_the_task_runs_the_sweep(organization, period_start):
    usage(organization, period_start, 30_000)
    assert send_usage_alerts.delay().get() == 1
    assert send_usage_alerts.delay().get() == 0
    assert len(mail.outbox) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_sweeps_send_each_alert_once(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    organization = member(email="race@example.com").membership.organization
    usage(organization, date(2026, 11, 1), 15_000)
    results, barrier = [], threading.Barrier(4)

    def sweep():
        barrier.wait()
        try:
            results.append(usage_alerts_send(now=NOW))
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 0, 0, 1]
    assert UsageAlert.objects.count() == 1


# --- active_alert_banner and the chart ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_banner_follows_the_highest_threshold(organization):
    assert active_alert_banner(organization_id=organization.pk, now=NOW) is None
    usage(organization, date(2026, 11, 1), 14_999)
    assert active_alert_banner(organization_id=organization.pk, now=NOW) is None
    usage(organization, date(2026, 11, 2), 1)
    assert (
        active_alert_banner(organization_id=organization.pk, now=NOW)
        == "You have used 50% of the 30,000 inputs included this month (15,000 so far)."
    )
    assert active_alert_banner(organization_id=organization.pk, now=NEXT_MONTH) is None


@pytest.mark.django_db
def test_banner_at_100_percent_with_overage(organization):
    organization.tier = Tier.objects.get(code="pro")
    organization.save()
    usage(organization, date(2026, 11, 1), 1_000_001)
    assert active_alert_banner(organization_id=organization.pk, now=NOW) == (
        "You have used all 1,000,000 inputs included this month (1,000,001 so far): further use is billed as overage."
    )


def test_usage_bars_scale_to_the_largest_day():
    series = [(date(2026, 11, 1), 0), (date(2026, 11, 2), 50), (date(2026, 11, 3), 200), (date(2026, 11, 4), 100)]
    bars = usage_bars(series)
    assert [(bar.day, bar.units, bar.height, bar.y) for bar in bars] == [
        (date(2026, 11, 1), 0, 0.0, float(CHART_HEIGHT)),
        (date(2026, 11, 2), 50, CHART_HEIGHT / 4, CHART_HEIGHT * 3 / 4),
        (date(2026, 11, 3), 200, float(CHART_HEIGHT), 0.0),
        (date(2026, 11, 4), 100, CHART_HEIGHT / 2, CHART_HEIGHT / 2),
    ]
    assert [bar.x for bar in bars] == [1.0, 181.0, 361.0, 541.0]
    assert {bar.width for bar in bars} == {CHART_WIDTH / 4 - 2}


def test_usage_bars_with_no_usage_are_flat():
    assert {bar.height for bar in usage_bars([(date(2026, 11, d), 0) for d in range(1, 31)])} == {0.0}
    assert usage_bars([]) == []


@pytest.mark.django_db
def test_spend_caps_sync_tells_the_api_who_is_capped_and_raising_the_cap_frees_them_at_once(
    django_capture_on_commit_callbacks,
):
    from decimal import Decimal

    from billing.dashboard.services import spend_cap_set, spend_caps_sync
    from core.redis import redis_client
    from serving.quotas.limiter import counter_keys
    from tests.factories import OrganizationFactory, member
    from tiers.models import Tier

    owner = member(organization=OrganizationFactory(tier=Tier.objects.get(code="pro")))
    organization = owner.membership.organization
    _, prefix = counter_keys(organization_id=organization.pk, key_id=0)
    period = timezone.now().strftime("%Y%m")

    with django_capture_on_commit_callbacks(execute=True):
        spend_cap_set(organization=organization, monthly_cap=Decimal("10.00"), actor=owner)  # below the $49 base
    assert redis_client().get(f"{prefix}:capped") == period.encode()
    assert spend_caps_sync(now=timezone.now()) == 1

    with django_capture_on_commit_callbacks(execute=True):
        spend_cap_set(organization=organization, monthly_cap=Decimal("500.00"), actor=owner)
    assert redis_client().get(f"{prefix}:capped") is None
    assert spend_caps_sync(now=timezone.now()) == 0
