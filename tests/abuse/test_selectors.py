"""What the abuse jobs read: windows of the query log, organizations with traffic to look at, the tier's normal
volume, the sign-up facts, and what a member may see of their standing."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from abuse.models import RiskState
from abuse.replay import simulated_calls_log
from abuse.selectors import (
    LOG_ARRIVAL_LAG,
    ModelReference,
    organizations_with_new_traffic,
    query_window,
    signup_facts,
    tier_normal_volume,
)
from abuse.simulation import SimulatedCall
from billing.metering.models import UsageDay
from billing.payments.models import BillingAccount
from tests.factories import SignupRecordFactory, member, raw_key_for
from tests.serving.helpers import DIGITS

pytestmark = pytest.mark.django_db

DIGITS_REFERENCE = ModelReference(slug="digits", schema=DIGITS, n_classes=10, profile=None)


def _org():
    organization = member().membership.organization
    raw_key_for(organization)
    return organization


def _calls(count: int, *, every: float = 10.0, batch: int = 2, first: int = 0) -> list[SimulatedCall]:
    calls = []
    for n in range(count):
        rows = (np.arange(batch * 64, dtype=np.uint8).reshape(batch, 64) + first + n) % 17
        calls.append(SimulatedCall(at=n * every, inputs=rows, labels=["1"] * batch, confidences=[0.5] * batch))
    return calls


def test_a_window_merges_organizations_in_time_order_from_each_ones_start(settings):
    settings.ABUSE_RISK_MAX_INPUTS = 6
    a, b = _org(), _org()
    now = timezone.now()
    simulated_calls_log(_calls(5), organization=a, start=now - timedelta(minutes=10))
    simulated_calls_log(_calls(3, first=5), organization=b, start=now - timedelta(minutes=9))
    error = SimulatedCall(at=0, inputs=np.zeros((0, 64), dtype=np.uint8), error="models:model_not_found")
    throttled = SimulatedCall(at=1, inputs=np.zeros((0, 64), dtype=np.uint8), error="predict:rate_limited")
    simulated_calls_log([error, throttled], organization=b, start=now - timedelta(minutes=9))

    window = query_window(starts={a.pk: now - timedelta(minutes=20), b.pk: now - timedelta(minutes=20)}, end=now,
                          reference=DIGITS_REFERENCE)  # fmt: skip

    assert window.accounts == 2
    assert window.total_inputs == 16  # every input counts for volume...
    assert window.inputs.shape == (6, 64)  # ...but only the latest ones are read
    assert list(np.diff(window.times) >= 0) == [True] * 5
    assert window.error_kinds == ["models:model_not_found"]  # throttling is not reconnaissance

    # A later start leaves out what came before it (what staff already reviewed).
    later = query_window(
        starts={a.pk: now - timedelta(minutes=10) + timedelta(seconds=25)}, end=now, reference=DIGITS_REFERENCE
    )
    assert later.total_inputs == 4 and later.accounts == 1


def test_organizations_are_looked_at_again_while_their_records_may_still_be_arriving():
    quiet, late, busy = _org(), _org(), _org()
    now = timezone.now()
    for organization in (quiet, late, busy):
        simulated_calls_log(_calls(1), organization=organization, start=now - timedelta(minutes=30))
    RiskState.objects.create(organization=quiet, assessed_at=now - timedelta(minutes=20))
    # Assessed just after its last call was made: the record may have reached PostgreSQL after the assessment.
    RiskState.objects.create(organization=late, assessed_at=now - timedelta(minutes=30) + LOG_ARRIVAL_LAG / 2)

    found = organizations_with_new_traffic(since=now - timedelta(hours=1), until=now)

    assert found == sorted([late.pk, busy.pk])
    assert organizations_with_new_traffic(since=now - timedelta(hours=1), until=now - timedelta(hours=1)) == []


def test_normal_volume_is_the_tiers_median_day_never_below_the_floor(settings):
    settings.ABUSE_NORMAL_VOLUME_FLOOR = 0.05
    assert tier_normal_volume(tier_code="pro", requests_per_day=200_000) == 10_000
    today = timezone.now().date()
    for units in (12_000, 30_000, 50_000):
        UsageDay.objects.create(organization=_org(), day=today, tier_code="pro", requests=1, units=units)
    assert tier_normal_volume(tier_code="pro", requests_per_day=200_000) == 30_000


def test_sign_up_facts_are_the_recent_sign_ups_and_everyone_sharing_a_card(settings):
    settings.ABUSE_RING_LOOKBACK = timedelta(days=30)
    recent = SignupRecordFactory(user=member(email="new@a.example"), ip_address="198.51.100.4")
    old = SignupRecordFactory(user=member(email="old@b.example"), created_at=timezone.now() - timedelta(days=90))
    old_with_card = SignupRecordFactory(
        user=member(email="c@c.example"), created_at=timezone.now() - timedelta(days=90)
    )
    BillingAccount.objects.create(organization=old_with_card.organization, card_fingerprint="fp_1")
    BillingAccount.objects.create(organization=recent.organization, card_fingerprint="fp_1")

    facts = {fact.organization_id: fact for fact in signup_facts(since=timezone.now() - timedelta(days=30))}

    assert set(facts) == {recent.organization_id, old_with_card.organization_id}
    assert old.organization_id not in facts
    assert (facts[recent.organization_id].ip_address, facts[recent.organization_id].card_fingerprint) == (
        "198.51.100.4", "fp_1",
    )  # fmt: skip


def _audit(organization, action: str, at, *, staff=None) -> None:
    from abuse.models import AuditEntry

    AuditEntry.objects.create(
        created_at=at, actor=staff, actor_label=staff.email if staff else "abuse jobs", action=action,
        organization_id=organization.pk, reason="test",
    )  # fmt: skip


def test_a_freeze_review_is_the_first_staff_decision_after_the_first_freeze_since_the_moment():
    from abuse.models import AuditAction
    from abuse.selectors import freeze_reviews

    since = timezone.now() - timedelta(hours=5)
    staff = member(is_staff=True, email="reviewer@moat.example")
    decided, pending, earlier, untouched = _org(), _org(), _org(), _org()
    frozen_at = since + timedelta(hours=1)
    _audit(decided, AuditAction.FREEZE, frozen_at)
    _audit(decided, AuditAction.NOTE, frozen_at + timedelta(minutes=5), staff=staff)  # a note decides nothing
    _audit(decided, AuditAction.FREEZE, frozen_at + timedelta(minutes=10))  # a second freeze: the first counts
    _audit(decided, AuditAction.SUSPEND, frozen_at + timedelta(minutes=30), staff=staff)
    _audit(decided, AuditAction.UNSUSPEND, frozen_at + timedelta(minutes=50), staff=staff)
    _audit(pending, AuditAction.FREEZE, frozen_at)
    _audit(pending, AuditAction.UNFREEZE, frozen_at + timedelta(minutes=1))  # the jobs' own action: no decision
    _audit(earlier, AuditAction.FREEZE, since - timedelta(minutes=1))
    _audit(earlier, AuditAction.FALSE_POSITIVE, since + timedelta(minutes=1), staff=staff)

    reviews = freeze_reviews(organization_ids=[o.pk for o in (decided, pending, earlier, untouched)], since=since)

    assert set(reviews) == {decided.pk, pending.pk}
    review = reviews[decided.pk]
    assert (review.frozen_at, review.decision, review.reviewer) == (frozen_at, AuditAction.SUSPEND, staff.email)
    assert review.seconds_to_decision == 30 * 60
    assert reviews[pending.pk].decided_at is None and reviews[pending.pk].seconds_to_decision is None
