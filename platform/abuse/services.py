"""Actions on an organization under abuse review, taken by the jobs or by staff: each writes the audit log.

Graded: warn (an email and a strike) < throttle (the quota's adaptive factor) < freeze (every key) < suspend (keys
frozen and nothing can be unfrozen until the suspension is lifted). Clearing actions (clear throttle, unfreeze,
false positive) mark the evidence so far as reviewed: the jobs then judge only what the organization sends next.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from abuse.errors import ReviewActionError
from abuse.models import Appeal, AuditAction, AuditEntry, Ring, RiskState
from abuse.selectors import organization_strikes
from accounts.models import Membership, Organization, User
from apikeys.services import apikeys_freeze_for_organization, apikeys_unfreeze_for_organization
from serving.quotas.services import organization_set_throttle_factor

logger = logging.getLogger(__name__)

JOBS_ACTOR = "abuse jobs"


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff member, or the jobs (user None)."""

    user: User | None

    @property
    def label(self) -> str:
        return self.user.email if self.user is not None else JOBS_ACTOR

    @classmethod
    def jobs(cls) -> "Actor":
        return cls(user=None)


def audit_record(
    *,
    actor: Actor,
    action: str,
    reason: str,
    organization_id: int | None = None,
    ring_id: int | None = None,
    details: dict | None = None,
) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor.user,
        actor_label=actor.label[:254],
        action=action,
        organization_id=organization_id,
        ring_id=ring_id,
        reason=reason,
        details=details or {},
    )


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ReviewActionError("Give a reason: it is written to the audit log.")
    return reason


def _locked_state(organization: Organization) -> RiskState:
    # One row per organization, locked for the action: two reviewers (or a reviewer and the jobs) acting at once
    # are serialized instead of interleaving their reads and writes.
    RiskState.objects.get_or_create(organization=organization)
    return RiskState.objects.select_for_update().get(organization=organization)


def _notify_members(entry: AuditEntry) -> None:
    from abuse.tasks import send_enforcement_email

    transaction.on_commit(lambda: send_enforcement_email.delay(entry.pk))


@transaction.atomic
def organization_warn(*, organization: Organization, actor: Actor, reason: str) -> AuditEntry:
    """An email to the members and a strike on record."""
    reason = _require_reason(reason)
    _locked_state(organization)  # serializes warnings, so each one's count is exact
    strikes = organization_strikes(organization_id=organization.pk) + 1
    entry = audit_record(
        actor=actor, action=AuditAction.WARN, reason=reason, organization_id=organization.pk,
        details={"strikes": strikes},
    )  # fmt: skip
    _notify_members(entry)
    return entry


@transaction.atomic
def organization_throttle(
    *, organization: Organization, actor: Actor, reason: str, factor: float | None = None, at: datetime | None = None
) -> AuditEntry | None:
    """Scale the organization's limits down (default: ABUSE_THROTTLE_FACTOR) as of `at` (default now: the jobs pass
    their run's moment, from which they count what the organization is answered afterwards). Returns None when it
    already is at or below that factor (the jobs run every few seconds and must not pile up entries)."""
    reason = _require_reason(reason)
    factor = settings.ABUSE_THROTTLE_FACTOR if factor is None else factor
    _locked_state(organization)
    current = Organization.objects.values_list("throttle_factor", flat=True).get(pk=organization.pk)
    if current <= factor:
        return None
    organization_set_throttle_factor(organization=organization, factor=factor, reason=reason, actor=actor.label, at=at)
    entry = audit_record(
        actor=actor, action=AuditAction.THROTTLE, reason=reason, organization_id=organization.pk,
        details={"factor": factor, "previous_factor": current},
    )  # fmt: skip
    _notify_members(entry)
    return entry


@transaction.atomic
def organization_clear_throttle(*, organization: Organization, actor: Actor, reason: str) -> AuditEntry | None:
    """Back to the tier's full limits; returns None when the organization was not throttled."""
    reason = _require_reason(reason)
    state = _locked_state(organization)
    current = Organization.objects.values_list("throttle_factor", flat=True).get(pk=organization.pk)
    if current >= 1:
        return None
    organization_set_throttle_factor(organization=organization, factor=1.0, reason="", actor=actor.label)
    if actor.user is not None:
        state.cleared_at = timezone.now()
        state.save(update_fields=["cleared_at"])
    return audit_record(
        actor=actor, action=AuditAction.CLEAR_THROTTLE, reason=reason, organization_id=organization.pk,
        details={"previous_factor": current},
    )  # fmt: skip


@transaction.atomic
def organization_freeze(
    *, organization: Organization, actor: Actor, reason: str, ring: Ring | None = None, details: dict | None = None
) -> AuditEntry | None:
    """Freeze every active key (403 `key_frozen` within seconds) and tell the members, with a way to appeal.
    Returns None when there was no active key to freeze."""
    reason = _require_reason(reason)
    _locked_state(organization)
    frozen = apikeys_freeze_for_organization(organization_id=organization.pk, actor=actor.label, reason=reason)
    if not frozen:
        return None
    entry = audit_record(
        actor=actor, action=AuditAction.FREEZE, reason=reason, organization_id=organization.pk,
        ring_id=ring.pk if ring else None, details={"keys_frozen": frozen, **(details or {})},
    )  # fmt: skip
    _notify_members(entry)
    return entry


@transaction.atomic
def organization_unfreeze(*, organization: Organization, actor: Actor, reason: str) -> AuditEntry:
    reason = _require_reason(reason)
    state = _locked_state(organization)
    if state.suspended_at is not None:
        raise ReviewActionError("The organization is suspended: lift the suspension to unfreeze its keys.")
    unfrozen = apikeys_unfreeze_for_organization(organization_id=organization.pk, actor=actor.label, reason=reason)
    state.cleared_at = timezone.now()
    state.save(update_fields=["cleared_at"])
    Appeal.objects.filter(organization=organization, resolved_at__isnull=True).update(resolved_at=timezone.now())
    return audit_record(
        actor=actor, action=AuditAction.UNFREEZE, reason=reason, organization_id=organization.pk,
        details={"keys_unfrozen": unfrozen},
    )  # fmt: skip


@transaction.atomic
def organization_suspend(*, organization: Organization, actor: Actor, reason: str) -> AuditEntry:
    """Freeze every key and keep them frozen: unfreezing needs the suspension lifted first."""
    reason = _require_reason(reason)
    state = _locked_state(organization)
    if state.suspended_at is not None:
        raise ReviewActionError("The organization is already suspended.")
    state.suspended_at = timezone.now()
    state.save(update_fields=["suspended_at"])
    frozen = apikeys_freeze_for_organization(organization_id=organization.pk, actor=actor.label, reason=reason)
    entry = audit_record(
        actor=actor, action=AuditAction.SUSPEND, reason=reason, organization_id=organization.pk,
        details={"keys_frozen": frozen},
    )  # fmt: skip
    _notify_members(entry)
    return entry


@transaction.atomic
def organization_unsuspend(*, organization: Organization, actor: Actor, reason: str) -> AuditEntry:
    """Lift the suspension; the keys stay frozen until a reviewer unfreezes them (a separate, deliberate step)."""
    reason = _require_reason(reason)
    state = _locked_state(organization)
    if state.suspended_at is None:
        raise ReviewActionError("The organization is not suspended.")
    state.suspended_at = None
    state.save(update_fields=["suspended_at"])
    return audit_record(actor=actor, action=AuditAction.UNSUSPEND, reason=reason, organization_id=organization.pk)


@transaction.atomic
def organization_mark_false_positive(*, organization: Organization, actor: Actor, reason: str) -> AuditEntry:
    """Record that the jobs were wrong about this organization, with the score and reasons they had. Thresholds
    are not changed by it: the entry is what an operator reads when tuning them. The evidence so far counts as
    reviewed, so the same traffic does not trigger again."""
    reason = _require_reason(reason)
    state = _locked_state(organization)
    state.cleared_at = timezone.now()
    state.save(update_fields=["cleared_at"])
    return audit_record(
        actor=actor, action=AuditAction.FALSE_POSITIVE, reason=reason, organization_id=organization.pk,
        details={"score": state.score, "level": state.level, "top_reasons": state.top_reasons},
    )  # fmt: skip


def organization_add_note(*, organization: Organization, actor: Actor, note: str) -> AuditEntry:
    return audit_record(
        actor=actor, action=AuditAction.NOTE, reason=_require_reason(note), organization_id=organization.pk
    )


@transaction.atomic
def appeal_submit(*, organization: Organization, user: User, message: str) -> Appeal:
    message = (message or "").strip()
    if not message:
        raise ReviewActionError("Tell us why the decision is wrong: your message goes to our review team.")
    appeal = Appeal.objects.create(organization=organization, submitted_by=user, message=message[:5000])
    audit_record(
        actor=Actor(user=user), action=AuditAction.APPEAL, reason=message[:5000], organization_id=organization.pk,
        details={"appeal_id": appeal.pk},
    )  # fmt: skip
    return appeal


_EMAIL_SUBJECTS = {
    AuditAction.WARN: "A warning about your use of the Moat API",
    AuditAction.THROTTLE: "Your Moat API limits have been reduced",
    AuditAction.FREEZE: "Your Moat API keys are frozen",
    AuditAction.SUSPEND: "Your Moat organization is suspended",
}


def enforcement_email_send(*, audit_entry_id: int) -> int:
    """Tell every member of the organization what happened, why, and how to appeal; returns how many were sent."""
    entry = AuditEntry.objects.filter(pk=audit_entry_id, action__in=list(_EMAIL_SUBJECTS)).first()
    if entry is None or entry.organization_id is None:
        return 0
    organization = Organization.objects.filter(pk=entry.organization_id).first()
    if organization is None:
        return 0
    recipients = list(
        Membership.objects.filter(organization=organization, user__is_active=True).values_list("user__email", flat=True)
    )
    if not recipients:
        return 0
    context = {
        "organization": organization,
        "entry": entry,
        "appeal_url": settings.SITE_URL + reverse("abuse:appeal"),
        "terms_url": settings.SITE_URL + reverse("legal:terms"),
    }
    send_mail(
        subject=_EMAIL_SUBJECTS[entry.action],
        message=render_to_string("abuse/email/enforcement.txt", context),
        from_email=None,
        recipient_list=recipients,
    )
    return len(recipients)
