"""The sign-up ring job on real PostgreSQL: links stored once per pair and signal, rings kept up to date (found,
grown, merged, respected when dismissed), safe to run twice or at once."""

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from abuse.models import AuditAction, AuditEntry, Ring, RingLevel, RingMember, RingStatus, RiskState, SignupLink
from abuse.rings import signup_rings_refresh
from abuse.tasks import refresh_signup_rings
from accounts.models import Organization
from billing.payments.models import BillingAccount
from tests.factories import SignupRecordFactory, member

pytestmark = pytest.mark.django_db


def _signup(
    email: str, ip: str, *, minutes_ago: float, user_agent: str = "Mozilla/5.0 (X11; Linux) Chrome/140"
) -> Organization:
    user = member(email=email)
    SignupRecordFactory(
        user=user, ip_address=ip, user_agent=user_agent,
        created_at=timezone.now() - timedelta(minutes=minutes_ago),
    )  # fmt: skip
    return user.membership.organization


def _sybils(prefix: str = "203.0.113", stem: str = "mlbuyer", start: int = 1, count: int = 5) -> list[Organization]:
    return [
        _signup(f"{stem}{n}@gmail.com", f"{prefix}.{10 + n}", minutes_ago=60 - 5 * n)
        for n in range(start, start + count)
    ]


def _members(ring: Ring) -> set[int]:
    return set(RingMember.objects.filter(ring=ring).values_list("organization_id", flat=True))


def test_a_sybil_ring_from_one_subnet_with_numbered_emails_becomes_one_ring_with_evidence():
    sybils = _sybils()
    honest = _signup("ada@lovelace.example", "198.51.100.7", minutes_ago=30)

    (ring,) = signup_rings_refresh()

    assert _members(ring) == {org.pk for org in sybils}
    assert ring.status == RingStatus.ACTIVE and ring.level == RingLevel.CERTAIN and ring.score > 0
    signals = set(SignupLink.objects.values_list("signal", flat=True))
    assert {"same_subnet", "email_pattern"} <= signals
    # Sharing the sybils' browser within minutes is too weak a link to keep, let alone to make a ring.
    assert honest.pk not in _members(ring)
    assert not SignupLink.objects.filter(low=honest).exists() and not SignupLink.objects.filter(high=honest).exists()
    assert all(link.evidence for link in SignupLink.objects.all())
    assert set(RiskState.objects.filter(ring=ring).values_list("organization_id", flat=True)) == _members(ring)
    (found,) = AuditEntry.objects.filter(action=AuditAction.RING_FOUND)
    assert (found.ring_id, found.actor_label, sorted(found.details["members"])) == (
        ring.pk, "abuse jobs", sorted(org.pk for org in sybils),
    )  # fmt: skip


SCRIPT_UA = "python-requests/2.32.3"


def test_a_numbered_wave_on_a_private_domain_is_one_certain_ring_and_the_next_wave_another():
    # Eight sign-ups within two minutes from one /24 by one program, `user{n}-x@`; ten hours later the same scheme's
    # next wave, `user{n}-y@`, from another /24.
    first = [
        _signup(f"user{n}-x@harvest.example", f"203.0.113.{10 + n}", minutes_ago=600 - n / 4, user_agent=SCRIPT_UA)
        for n in range(1, 9)
    ]
    second = [
        _signup(f"user{n}-y@harvest.example", f"198.51.100.{10 + n}", minutes_ago=2 - n / 4, user_agent=SCRIPT_UA)
        for n in range(1, 9)
    ]

    rings = signup_rings_refresh()

    assert [(_members(ring), ring.level) for ring in rings] == [
        ({org.pk for org in first}, RingLevel.CERTAIN), ({org.pk for org in second}, RingLevel.CERTAIN),
    ]  # fmt: skip
    assert [Ring.objects.get(pk=ring.pk).score for ring in rings] == [97.2, 97.2]
    # `user1-x@` and `user1-y@` share a number, not a template: no link between the waves.
    first_ids = {org.pk for org in first}
    across = [
        (lo, hi) for lo, hi in SignupLink.objects.values_list("low", "high") if (lo in first_ids) != (hi in first_ids)
    ]
    assert across == []


def _slow_script(count: int = 4, *, prefix: str = "192.0.2") -> list[Organization]:
    """One program's sign-ups with unrelated webmail names from one /24, ten minutes apart: a likely ring."""
    names = ["kqvl", "mzrt", "bxwe", "pjdn", "tfgo", "hyua"]
    return [
        _signup(f"{names[n]}@gmail.com", f"{prefix}.{10 + n}", minutes_ago=60 - 10 * n, user_agent=SCRIPT_UA)
        for n in range(count)
    ]


def test_a_likely_ring_is_stored_as_likely_and_becomes_certain_when_the_evidence_does():
    sybils = _slow_script()

    (ring,) = signup_rings_refresh()

    assert (_members(ring), ring.level, ring.score) == ({org.pk for org in sybils}, RingLevel.LIKELY, 66.4)
    (found,) = AuditEntry.objects.filter(action=AuditAction.RING_FOUND)
    assert found.reason == "4 organizations linked by their sign-ups, likely one operator (not yet proven)."
    assert found.details["level"] == "likely"
    assert set(RiskState.objects.filter(ring=ring).values_list("organization_id", flat=True)) == _members(ring)

    # One card pays for two of them: certain, and still the same ring with every member it had.
    for organization in sybils[:2]:
        BillingAccount.objects.create(organization=organization, card_fingerprint="fp_same_card")
    (again,) = signup_rings_refresh()
    signup_rings_refresh()  # and a run after that changes nothing

    ring.refresh_from_db()
    assert (again.pk, ring.level, _members(ring)) == (ring.pk, RingLevel.CERTAIN, {org.pk for org in sybils})
    assert list(
        AuditEntry.objects.filter(action=AuditAction.RING_FOUND).order_by("pk").values_list("reason", flat=True)
    ) == [
        "4 organizations linked by their sign-ups, likely one operator (not yet proven).",
        f"Ring {ring.pk} is now certain: stronger sign-up evidence links 2 of its members.",
    ]


def test_a_likely_ring_staff_dismissed_is_raised_again_only_by_certain_evidence():
    sybils = _slow_script()
    (ring,) = signup_rings_refresh()
    Ring.objects.filter(pk=ring.pk).update(status=RingStatus.DISMISSED)
    assert signup_rings_refresh() == []

    for organization in sybils[:2]:
        BillingAccount.objects.create(organization=organization, card_fingerprint="fp_same_card")
    (certain,) = signup_rings_refresh()

    assert certain.pk != ring.pk and certain.level == RingLevel.CERTAIN
    assert _members(certain) == {org.pk for org in sybils[:2]}
    assert Ring.objects.get(pk=ring.pk).status == RingStatus.DISMISSED


def test_running_twice_changes_nothing():
    _sybils()
    first = signup_rings_refresh()
    links = list(SignupLink.objects.order_by("pk").values_list("low", "high", "signal", "weight"))
    second = signup_rings_refresh()
    assert [r.pk for r in first] == [r.pk for r in second]
    assert list(SignupLink.objects.order_by("pk").values_list("low", "high", "signal", "weight")) == links
    assert Ring.objects.count() == 1 and RingMember.objects.count() == 5
    assert AuditEntry.objects.filter(action=AuditAction.RING_FOUND).count() == 1


def test_a_new_sybil_joins_its_ring_and_a_bridge_merges_two_rings():
    first = _sybils(prefix="203.0.113", stem="mlbuyer", count=3)
    second = _sybils(prefix="192.0.2", stem="scraper", count=3)
    ring_a, ring_b = signup_rings_refresh()
    assert {frozenset(_members(ring_a)), frozenset(_members(ring_b))} == {
        frozenset(o.pk for o in first), frozenset(o.pk for o in second),
    }  # fmt: skip

    # One card pays for an account in each ring: one operator.
    for organization in (first[0], second[0]):
        BillingAccount.objects.create(organization=organization, card_fingerprint="fp_same_card")
    (ring,) = signup_rings_refresh()

    assert ring.pk == min(ring_a.pk, ring_b.pk)  # the oldest ring absorbs the other
    assert _members(ring) == {o.pk for o in first + second}
    merged = Ring.objects.get(pk=max(ring_a.pk, ring_b.pk))
    assert (merged.status, merged.merged_into_id) == (RingStatus.MERGED, ring.pk)
    assert set(RiskState.objects.filter(ring=ring).values_list("organization_id", flat=True)) == _members(ring)
    assert SignupLink.objects.filter(signal="same_card").count() == 1


def test_a_ring_staff_dismissed_is_not_raised_again_for_the_same_members():
    _sybils()
    (ring,) = signup_rings_refresh()
    Ring.objects.filter(pk=ring.pk).update(status=RingStatus.DISMISSED)
    assert signup_rings_refresh() == []
    assert Ring.objects.count() == 1


def test_sign_ups_older_than_the_look_back_are_not_linked(settings):
    settings.ABUSE_RING_LOOKBACK = timedelta(minutes=10)
    _sybils()  # 35 to 55 minutes ago
    assert signup_rings_refresh() == []
    assert not SignupLink.objects.exists()


def test_the_celery_task_runs_the_job():
    _sybils()
    assert refresh_signup_rings.delay().get(timeout=30) == 1
    assert Ring.objects.filter(status=RingStatus.ACTIVE).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_make_one_ring():
    _sybils()
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            signup_rings_refresh()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Ring.objects.count() == 1 and RingMember.objects.count() == 5
    assert AuditEntry.objects.filter(action=AuditAction.RING_FOUND).count() == 1
