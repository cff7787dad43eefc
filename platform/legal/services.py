"""Writes of Terms acceptance."""

from django.db import IntegrityError, transaction

from legal.models import TermsAcceptance, TermsVersion, terms_body_sha256


@transaction.atomic
def terms_accept(*, user_id: int, terms: TermsVersion, ip_address: str | None, user_agent: str) -> TermsAcceptance:
    """Record that the user accepted `terms`, with the SHA-256 of its text as it is now. Accepting twice keeps the
    first record (the evidence)."""
    try:
        with transaction.atomic():
            return TermsAcceptance.objects.create(
                user_id=user_id,
                terms=terms,
                ip_address=ip_address,
                user_agent=user_agent[:512],
                body_sha256=terms_body_sha256(terms.body),
            )
    except IntegrityError:
        return TermsAcceptance.objects.get(user_id=user_id, terms=terms)
