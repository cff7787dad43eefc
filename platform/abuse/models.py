"""Abuse detection's records: sign-up links and rings, extraction-risk assessments over time, each organization's
current risk state, appeals, and the append-only audit log of every action taken on an organization."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class RiskLevel(models.TextChoices):
    NORMAL = "normal", "Normal"
    THROTTLE = "throttle", "Throttle"
    FREEZE = "freeze", "Freeze"


class SignupLink(models.Model):
    """Two organizations share a sign-up signal (the same /24, patterned emails, the same card...). Stored once per
    pair and signal, so the ring builder can run any number of times."""

    # The lower id first: one row per unordered pair.
    low = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    high = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    signal = models.CharField(max_length=32)
    weight = models.FloatField()
    evidence = models.TextField()
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["low", "high", "signal"], name="signup_link_unique"),
            models.CheckConstraint(condition=models.Q(low__lt=models.F("high")), name="signup_link_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.low_id}-{self.high_id} {self.signal}"


class RingStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    MERGED = "merged", "Merged into another ring"
    DISMISSED = "dismissed", "Dismissed by staff"


class RingLevel(models.TextChoices):
    """How sure the sign-up evidence is (`abuse.linking.CERTAIN`, `LIKELY`). Both are scored as one actor; only a
    certain ring freezes every member for one member's own conduct. A ring only ever rises from likely to certain:
    the evidence that made it certain once is a record, even after its sign-ups leave the look-back window."""

    CERTAIN = "certain", "Certain"
    LIKELY = "likely", "Likely"


class Ring(models.Model):
    """Organizations that sign-up evidence ties to one operator: their queries are scored together."""

    score = models.FloatField(help_text="0..100, from the strength of the links and the number of members.")
    status = models.CharField(max_length=16, choices=RingStatus.choices, default=RingStatus.ACTIVE)
    level = models.CharField(max_length=16, choices=RingLevel.choices, default=RingLevel.CERTAIN)
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    members = models.ManyToManyField("accounts.Organization", through="RingMember", related_name="rings")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-score", "pk"]

    def __str__(self) -> str:
        return f"ring {self.pk}"


class RingMember(models.Model):
    ring = models.ForeignKey(Ring, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["ring", "organization"], name="ring_member_unique")]

    def __str__(self) -> str:
        return f"{self.organization_id} in ring {self.ring_id}"


class RiskAssessment(models.Model):
    """One extraction-risk score of an organization or of a ring, with its components, kept over time."""

    organization = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    ring = models.ForeignKey(Ring, null=True, blank=True, on_delete=models.CASCADE, related_name="assessments")
    # The job's time bucket: a second run in the same bucket rewrites its row instead of adding one.
    bucket = models.DateTimeField()
    computed_at = models.DateTimeField(default=timezone.now)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    queries = models.PositiveIntegerField()
    score = models.PositiveSmallIntegerField()
    level = models.CharField(max_length=16, choices=RiskLevel.choices)
    components = models.JSONField(default=list, help_text="[{name, value, points, max_points, detail}, ...]")
    explanation = models.TextField()

    class Meta:
        ordering = ["-bucket"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(organization__isnull=False, ring__isnull=True)
                | models.Q(organization__isnull=True, ring__isnull=False),
                name="risk_assessment_one_subject",
            ),
            models.UniqueConstraint(
                fields=["organization", "bucket"], condition=models.Q(ring__isnull=True), name="risk_org_bucket"
            ),
            models.UniqueConstraint(
                fields=["ring", "bucket"], condition=models.Q(organization__isnull=True), name="risk_ring_bucket"
            ),
        ]
        indexes = [models.Index(fields=["organization", "bucket"]), models.Index(fields=["ring", "bucket"])]

    def __str__(self) -> str:
        return f"risk {self.score} ({self.level}) at {self.bucket:%Y-%m-%d %H:%M}"


class RiskState(models.Model):
    """An organization's current standing, kept up to date by the jobs: what the review queue sorts by."""

    organization = models.OneToOneField("accounts.Organization", on_delete=models.CASCADE, related_name="risk")
    score = models.PositiveSmallIntegerField(default=0, help_text="max(own score, ring score).")
    previous_score = models.PositiveSmallIntegerField(default=0)
    level = models.CharField(max_length=16, choices=RiskLevel.choices, default=RiskLevel.NORMAL)
    top_reasons = models.JSONField(default=list)
    explanation = models.TextField(blank=True)
    ring = models.ForeignKey(Ring, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    assessed_at = models.DateTimeField(null=True, blank=True)
    # Evidence before this moment was reviewed by staff (unfreeze, clear, false positive): the jobs act only on
    # queries sent after it, so a reviewed organization is not frozen again for the same traffic.
    cleared_at = models.DateTimeField(null=True, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["-score"])]

    def __str__(self) -> str:
        return f"{self.organization_id}: {self.score} ({self.level})"

    @property
    def trend(self) -> int:
        return int(self.score) - int(self.previous_score)


class Appeal(models.Model):
    """A member's appeal against a freeze, throttle or suspension."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="appeals")
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    message = models.TextField(max_length=5000)
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"appeal {self.pk} of {self.organization_id}"


class AuditAction(models.TextChoices):
    WARN = "warn", "Warned (strike)"
    THROTTLE = "throttle", "Throttled"
    CLEAR_THROTTLE = "clear_throttle", "Throttle cleared"
    FREEZE = "freeze", "Keys frozen"
    UNFREEZE = "unfreeze", "Keys unfrozen"
    SUSPEND = "suspend", "Organization suspended"
    UNSUSPEND = "unsuspend", "Suspension lifted"
    FALSE_POSITIVE = "false_positive", "Marked as false positive"
    NOTE = "note", "Note"
    RING_FOUND = "ring_found", "Sign-up ring found"
    APPEAL = "appeal", "Appeal received"


class AuditEntry(models.Model):
    """Append-only: a database trigger refuses UPDATE and DELETE (migration 0002), so the log is evidence even
    against a mistaken admin or a bug. Organization and ring are plain ids for the same reason: the entry
    outlives what it names."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
        related_name="+",
    )  # fmt: skip
    actor_label = models.CharField(max_length=254, help_text="The staff member's email, or 'abuse jobs'.")
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    organization = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
        related_name="+",
    )  # fmt: skip
    ring = models.ForeignKey(
        Ring, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    reason = models.TextField()
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["organization", "created_at"])]
        permissions = [("review_abuse", "Can act on abuse reviews (warn, throttle, freeze, suspend)")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("Audit entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs) -> tuple[int, dict[str, int]]:
        raise ValueError("Audit entries are append-only.")
