"""Versioned Terms of Service and who accepted which version, when, and from where."""

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone


def terms_body_sha256(body: str) -> str:
    """The fingerprint of a version's text, stored with each acceptance."""
    return hashlib.sha256(body.encode()).hexdigest()


class TermsVersion(models.Model):
    """One published version of the Terms. The current one is the latest whose effective time has come. Once
    someone has accepted a version, the admin shows it read-only."""

    version = models.CharField(max_length=32, unique=True, help_text="For example 2026-11-01.")
    title = models.CharField(max_length=200, default="Moat Terms of Service")
    body = models.TextField(help_text="Plain text; blank lines separate paragraphs.")
    effective_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-effective_at"]

    def __str__(self) -> str:
        return f"Terms {self.version}"


class TermsAcceptance(models.Model):
    """Evidence that a user accepted a version, with the SHA-256 of the text they accepted (so the evidence
    survives any later edit of the version). Rows are never edited or deleted."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="terms_acceptances")
    terms = models.ForeignKey(TermsVersion, on_delete=models.PROTECT, related_name="acceptances")
    accepted_at = models.DateTimeField(default=timezone.now)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    body_sha256 = models.CharField(
        max_length=64, editable=False, help_text="SHA-256 of the version's text when it was accepted."
    )

    class Meta:
        ordering = ["-accepted_at"]
        constraints = [models.UniqueConstraint(fields=["user", "terms"], name="terms_accepted_once_per_version")]

    def __str__(self) -> str:
        return f"{self.user} accepted {self.terms.version}"
