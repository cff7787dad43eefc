"""Spend caps and the record of usage alerts already sent (one row per organization, period and threshold)."""

from decimal import Decimal

from django.conf import settings
from django.db import models

ALERT_THRESHOLDS = (50, 80, 100)


class SpendCap(models.Model):
    """An owner's monthly ceiling on the invoice preview; once reached, the API answers 402 spend_cap_reached."""

    organization = models.OneToOneField("accounts.Organization", on_delete=models.CASCADE, related_name="spend_cap")
    monthly_cap = models.DecimalField(max_digits=10, decimal_places=2, help_text="In US dollars, per calendar month.")
    set_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(monthly_cap__gt=Decimal("0")), name="spendcap_positive")
        ]

    def __str__(self) -> str:
        return f"spend cap of organization {self.organization_id}: ${self.monthly_cap}"


class UsageAlert(models.Model):
    """A usage alert that was sent. The unique constraint is what makes an alert go out once per threshold per
    period, even when two workers run the sweep at the same time."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="usage_alerts")
    period = models.CharField(max_length=6, help_text="The billing period, YYYYMM (UTC).")
    threshold = models.PositiveSmallIntegerField(choices=[(t, f"{t}%") for t in ALERT_THRESHOLDS])
    sent_at = models.DateTimeField()

    class Meta:
        ordering = ["-sent_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "period", "threshold"], name="usagealert_org_period_threshold_unique"
            ),
            models.CheckConstraint(condition=models.Q(threshold__in=ALERT_THRESHOLDS), name="usagealert_threshold"),
        ]

    def __str__(self) -> str:
        return f"{self.threshold}% alert for organization {self.organization_id} in {self.period}"
