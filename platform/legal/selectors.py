"""Reads of the Terms: which version is current and who has accepted it."""

from datetime import datetime

from django.utils import timezone

from legal.models import TermsAcceptance, TermsVersion


def terms_current(*, now: datetime | None = None) -> TermsVersion | None:
    """The version in force at `now`: the latest one whose effective time has passed."""
    return TermsVersion.objects.filter(effective_at__lte=now or timezone.now()).order_by("-effective_at").first()


def user_has_accepted_current_terms(*, user_id: int) -> bool:
    """True when there is no current version or the user accepted it."""
    current = terms_current()
    return current is None or TermsAcceptance.objects.filter(user_id=user_id, terms=current).exists()


def organization_has_accepted_current_terms(*, organization_id: int) -> bool:
    """An organization may call the API while at least one of its members has accepted the current version."""
    current = terms_current()
    return (
        current is None
        or TermsAcceptance.objects.filter(
            terms=current, user__membership__organization_id=organization_id, user__is_active=True
        ).exists()
    )
