"""API keys: shown once, stored as a SHA-256 hash and a short display fragment, never deleted."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class KeyState(models.TextChoices):
    ACTIVE = "active", "Active"
    FROZEN = "frozen", "Frozen"
    REVOKED = "revoked", "Revoked"


class ApiKey(models.Model):
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    # The keys carry 256 bits of randomness, so a fast hash is enough: no password hash on the hot path.
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    display = models.CharField(max_length=32, editable=False, help_text="Prefix and last four characters.")
    state = models.CharField(max_length=16, choices=KeyState.choices, default=KeyState.ACTIVE, db_index=True)
    state_reason = models.TextField(blank=True)
    state_changed_by = models.CharField(
        max_length=200,
        blank=True,
        help_text="Who or what set the state: a user's email, 'staff:…' or 'abuse:…'.",
    )
    state_changed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when the key is rolled: it stops working at this time."
    )
    replaced_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaces"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "state"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.display})"

    def is_usable(self, *, now=None) -> bool:
        """Active and not past its expiry."""
        now = now or timezone.now()
        return self.state == KeyState.ACTIVE and (self.expires_at is None or self.expires_at > now)
