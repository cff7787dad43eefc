"""Users, the organizations they belong to (the tenant), the invitations that bring people in, and the facts
recorded at sign-up."""

import hashlib
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.emails import canonical_email


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, username: str) -> "User":
        return self.get(email_canonical=canonical_email(username))

    def create_user(self, email: str, password: str | None = None, **fields) -> "User":
        email = self.normalize_email(email)
        user = self.model(email=email, email_canonical=canonical_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields) -> "User":
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        fields.setdefault("email_verified_at", timezone.now())
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in with an email address and a password."""

    email = models.EmailField(max_length=254, unique=True, help_text="As the person typed it (domain lower-cased).")
    email_canonical = models.CharField(
        max_length=254, unique=True, editable=False, help_text="The mailbox, for uniqueness and sign-in."
    )
    email_verified_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.email

    def save(self, *args, **kwargs) -> None:
        # The canonical form is derived, never typed: keep it in step with the address on every save.
        self.email_canonical = canonical_email(self.email)
        super().save(*args, **kwargs)

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None


class BillingState(models.TextChoices):
    NONE = "none", "No subscription"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"


class Organization(models.Model):
    """The tenant: it owns the API keys, the usage and the bill."""

    name = models.CharField(max_length=100)
    tier = models.ForeignKey("tiers.Tier", on_delete=models.PROTECT, related_name="organizations")
    billing_state = models.CharField(max_length=16, choices=BillingState.choices, default=BillingState.NONE)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Adaptive throttling: the tier's rate limits are scaled by this factor (1 = the tier's limits).
    throttle_factor = models.FloatField(default=1.0)
    throttle_reason = models.TextField(blank=True)
    throttle_set_by = models.CharField(max_length=200, blank=True)
    throttle_set_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(throttle_factor__gte=0, throttle_factor__lte=1), name="throttle_factor_range"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    MEMBER = "member", "Member"


class Membership(models.Model):
    """A user's place in their organization. A user belongs to exactly one organization."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="membership")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.user} ({self.role} of {self.organization})"


class SignupRecord(models.Model):
    """What we saw when an account was created; the abuse jobs link sign-up rings from these rows."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="signup_record")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="signup_records")
    ip_address = models.GenericIPAddressField(null=True, blank=True, db_index=True)
    user_agent = models.CharField(max_length=512, blank=True)
    email = models.EmailField(max_length=254)
    email_canonical = models.CharField(max_length=254)
    email_domain = models.CharField(max_length=253, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"sign-up of {self.email} from {self.ip_address}"


INVITATION_MAX_AGE = timedelta(days=7)


def invitation_token_hash(token: str) -> str:
    """The stored form of an invitation token. The token carries 256 bits of randomness, so a fast hash is enough."""
    return hashlib.sha256(token.encode()).hexdigest()


class Invitation(models.Model):
    """An owner's invitation for one mailbox to join their organization. Only the SHA-256 of the emailed token is
    stored. Pending means neither accepted nor revoked; a pending invitation past `expires_at` no longer works."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254, help_text="As the owner typed it (domain lower-cased).")
    email_canonical = models.CharField(max_length=254, editable=False)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "email_canonical"],
                condition=Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="invitation_one_pending_per_mailbox",
            )
        ]

    def __str__(self) -> str:
        return f"invitation of {self.email} to {self.organization}"

    def save(self, *args, **kwargs) -> None:
        # As on User: the canonical mailbox is derived, never typed.
        self.email_canonical = canonical_email(self.email)
        super().save(*args, **kwargs)

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None

    def is_expired(self, *, now: datetime | None = None) -> bool:
        return self.expires_at <= (now or timezone.now())
