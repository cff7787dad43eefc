"""Graded actions on an organization under review: each one does what it says, is audited with its reason, tells
the members where it should, and refuses what makes no sense."""

import pytest
from django.core import mail
from django.db import DatabaseError, transaction

from abuse.errors import ReviewActionError
from abuse.models import Appeal, AuditAction, AuditEntry, RiskState
from abuse.selectors import organization_strikes
from abuse.services import (
    Actor,
    appeal_submit,
    enforcement_email_send,
    organization_add_note,
    organization_clear_throttle,
    organization_freeze,
    organization_mark_false_positive,
    organization_suspend,
    organization_throttle,
    organization_unfreeze,
    organization_unsuspend,
    organization_warn,
)
from accounts.models import Organization, Role
from apikeys.models import ApiKey, KeyState
from apikeys.services import apikey_create
from tests.factories import UserFactory, member, raw_key_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer():
    return UserFactory(is_staff=True, email="reviewer@moat.example")


@pytest.fixture
def org_with_keys():
    owner = member(email="owner@acme.example")
    member(organization=owner.membership.organization, role=Role.MEMBER, email="dev@acme.example")
    organization = owner.membership.organization
    raw_key_for(organization, name="one")
    raw_key_for(organization, name="two")
    return organization


def _entries(organization, action):
    return list(AuditEntry.objects.filter(organization_id=organization.pk, action=action))


def test_freezing_freezes_every_active_key_audits_it_and_emails_every_member_with_the_appeal_link(
    org_with_keys, reviewer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        entry = organization_freeze(organization=org_with_keys, actor=Actor(user=reviewer), reason="Scraping.")

    assert set(ApiKey.objects.filter(organization=org_with_keys).values_list("state", flat=True)) == {KeyState.FROZEN}
    assert ApiKey.objects.filter(organization=org_with_keys).first().state_reason == "Scraping."
    assert (entry.actor, entry.actor_label, entry.reason) == (reviewer, "reviewer@moat.example", "Scraping.")
    assert entry.details["keys_frozen"] == 2
    (message,) = mail.outbox
    assert message.subject == "Your Moat API keys are frozen"
    assert sorted(message.to) == ["dev@acme.example", "owner@acme.example"]
    assert "Scraping." in message.body
    assert "http://testserver/appeal/" in message.body or "/appeal/" in message.body


def test_freezing_twice_does_nothing_the_second_time(org_with_keys, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert organization_freeze(organization=org_with_keys, actor=Actor.jobs(), reason="Risk 90.") is not None
        assert organization_freeze(organization=org_with_keys, actor=Actor.jobs(), reason="Risk 91.") is None
    assert len(_entries(org_with_keys, AuditAction.FREEZE)) == 1
    assert len(mail.outbox) == 1
    assert _entries(org_with_keys, AuditAction.FREEZE)[0].actor_label == "abuse jobs"


def test_unfreezing_restores_the_keys_resolves_appeals_and_marks_the_evidence_reviewed(org_with_keys, reviewer):
    organization_freeze(organization=org_with_keys, actor=Actor.jobs(), reason="Risk 90.")
    appeal_submit(organization=org_with_keys, user=org_with_keys.memberships.first().user, message="We are a lab.")

    entry = organization_unfreeze(organization=org_with_keys, actor=Actor(user=reviewer), reason="Checked: a lab.")

    assert set(ApiKey.objects.filter(organization=org_with_keys).values_list("state", flat=True)) == {KeyState.ACTIVE}
    assert entry.details == {"keys_unfrozen": 2}
    assert Appeal.objects.get(organization=org_with_keys).resolved_at is not None
    assert RiskState.objects.get(organization=org_with_keys).cleared_at is not None


def test_a_revoked_key_stays_revoked_through_freeze_and_unfreeze(org_with_keys, reviewer):
    revoked = ApiKey.objects.filter(organization=org_with_keys).first()
    ApiKey.objects.filter(pk=revoked.pk).update(state=KeyState.REVOKED)
    organization_freeze(organization=org_with_keys, actor=Actor(user=reviewer), reason="x")
    organization_unfreeze(organization=org_with_keys, actor=Actor(user=reviewer), reason="y")
    revoked.refresh_from_db()
    assert revoked.state == KeyState.REVOKED


def test_throttling_sets_the_factor_once_and_clearing_restores_full_limits(org_with_keys, reviewer, settings):
    settings.ABUSE_THROTTLE_FACTOR = 0.25
    first = organization_throttle(organization=org_with_keys, actor=Actor.jobs(), reason="Risk 60.")
    again = organization_throttle(organization=org_with_keys, actor=Actor.jobs(), reason="Risk 61.")
    org_with_keys.refresh_from_db()
    assert (first.details, again) == ({"factor": 0.25, "previous_factor": 1.0}, None)
    assert (org_with_keys.throttle_factor, org_with_keys.throttle_set_by) == (0.25, "abuse jobs")

    # A reviewer may throttle harder than the jobs did.
    harder = organization_throttle(organization=org_with_keys, actor=Actor(user=reviewer), reason="Worse.", factor=0.1)
    assert harder.details == {"factor": 0.1, "previous_factor": 0.25}

    cleared = organization_clear_throttle(organization=org_with_keys, actor=Actor(user=reviewer), reason="Fine now.")
    org_with_keys.refresh_from_db()
    assert org_with_keys.throttle_factor == 1.0
    assert cleared.details == {"previous_factor": 0.1}
    assert organization_clear_throttle(organization=org_with_keys, actor=Actor(user=reviewer), reason="x") is None
    assert RiskState.objects.get(organization=org_with_keys).cleared_at is not None


def test_a_throttle_factor_outside_0_to_1_is_refused(org_with_keys, reviewer):
    from serving.quotas.services import InvalidThrottleFactorError

    with pytest.raises(InvalidThrottleFactorError):
        organization_throttle(organization=org_with_keys, actor=Actor(user=reviewer), reason="x", factor=0)
    assert Organization.objects.get(pk=org_with_keys.pk).throttle_factor == 1.0
    assert not _entries(org_with_keys, AuditAction.THROTTLE)


def test_warning_adds_a_strike_and_emails_the_members(org_with_keys, reviewer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        organization_warn(organization=org_with_keys, actor=Actor(user=reviewer), reason="Bulk queries.")
        organization_warn(organization=org_with_keys, actor=Actor(user=reviewer), reason="Again.")
    assert organization_strikes(organization_id=org_with_keys.pk) == 2
    assert [m.subject for m in mail.outbox] == ["A warning about your use of the Moat API"] * 2
    assert _entries(org_with_keys, AuditAction.WARN)[0].details == {"strikes": 2}


def test_suspension_freezes_the_keys_and_holds_them_frozen_until_lifted(org_with_keys, reviewer):
    organization_suspend(organization=org_with_keys, actor=Actor(user=reviewer), reason="Ring operator.")
    assert not ApiKey.objects.filter(organization=org_with_keys, state=KeyState.ACTIVE).exists()
    with pytest.raises(ReviewActionError, match="lift the suspension"):
        organization_unfreeze(organization=org_with_keys, actor=Actor(user=reviewer), reason="oops")
    with pytest.raises(ReviewActionError, match="already suspended"):
        organization_suspend(organization=org_with_keys, actor=Actor(user=reviewer), reason="twice")
    # No new key while suspended (the keys are frozen).
    from apikeys.errors import OrganizationFrozenError

    with pytest.raises(OrganizationFrozenError):
        apikey_create(organization=org_with_keys, name="around it", created_by=None)

    organization_unsuspend(organization=org_with_keys, actor=Actor(user=reviewer), reason="Cleared.")
    assert not ApiKey.objects.filter(organization=org_with_keys, state=KeyState.ACTIVE).exists()  # a separate step
    organization_unfreeze(organization=org_with_keys, actor=Actor(user=reviewer), reason="Cleared.")
    assert ApiKey.objects.filter(organization=org_with_keys, state=KeyState.ACTIVE).count() == 2
    assert [e.action for e in AuditEntry.objects.filter(organization_id=org_with_keys.pk).order_by("pk")] == [
        AuditAction.SUSPEND, AuditAction.UNSUSPEND, AuditAction.UNFREEZE,
    ]  # fmt: skip


def test_false_positive_records_what_the_jobs_thought_and_changes_no_threshold(org_with_keys, reviewer, settings):
    RiskState.objects.create(organization=org_with_keys, score=85, level="freeze", top_reasons=["uniform inputs"])
    thresholds = (settings.ABUSE_THROTTLE_SCORE, settings.ABUSE_FREEZE_SCORE)
    entry = organization_mark_false_positive(organization=org_with_keys, actor=Actor(user=reviewer), reason="A lab.")
    assert entry.details == {"score": 85, "level": "freeze", "top_reasons": ["uniform inputs"]}
    assert thresholds == (settings.ABUSE_THROTTLE_SCORE, settings.ABUSE_FREEZE_SCORE)
    assert RiskState.objects.get(organization=org_with_keys).cleared_at is not None


@pytest.mark.parametrize("reason", ["", "   "])
def test_every_action_needs_a_reason_and_changes_nothing_without_one(org_with_keys, reviewer, reason):
    actor = Actor(user=reviewer)
    for action in (organization_warn, organization_throttle, organization_freeze, organization_suspend,
                   organization_mark_false_positive):  # fmt: skip
        with pytest.raises(ReviewActionError, match="Give a reason"):
            action(organization=org_with_keys, actor=actor, reason=reason)
    with pytest.raises(ReviewActionError):
        organization_add_note(organization=org_with_keys, actor=actor, note=reason)
    assert not AuditEntry.objects.exists()
    assert ApiKey.objects.filter(organization=org_with_keys, state=KeyState.ACTIVE).count() == 2


def test_the_audit_log_is_append_only_in_the_database_too(org_with_keys, reviewer):
    entry = organization_add_note(organization=org_with_keys, actor=Actor(user=reviewer), note="Watching.")
    with pytest.raises(ValueError, match="append-only"):
        entry.save()
    with pytest.raises(ValueError, match="append-only"):
        entry.delete()
    # Past the model: the trigger refuses UPDATE and DELETE from any client.
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(reason="rewritten")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).delete()
    assert AuditEntry.objects.get(pk=entry.pk).reason == "Watching."


def test_an_appeal_needs_a_message_and_is_audited(org_with_keys):
    user = org_with_keys.memberships.first().user
    with pytest.raises(ReviewActionError):
        appeal_submit(organization=org_with_keys, user=user, message="  ")
    appeal = appeal_submit(organization=org_with_keys, user=user, message="We label digits for a museum.")
    assert appeal.resolved_at is None
    (entry,) = _entries(org_with_keys, AuditAction.APPEAL)
    assert (entry.actor, entry.details) == (user, {"appeal_id": appeal.pk})


def test_no_email_for_actions_members_are_not_told_about_or_organizations_gone(org_with_keys, reviewer):
    note = organization_add_note(organization=org_with_keys, actor=Actor(user=reviewer), note="Internal.")
    assert enforcement_email_send(audit_entry_id=note.pk) == 0
    assert enforcement_email_send(audit_entry_id=10**9) == 0
    assert mail.outbox == []
