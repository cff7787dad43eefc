"""What we know of each organization's Stripe side, every webhook event received, past invoices, the usage reports
sent to the billing meter and the Stripe ids of each tier's prices."""

from django.db import models
from django.utils import timezone


class BillingAccount(models.Model):
    """An organization's Stripe customer and subscription, as the webhooks last told us."""

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="billing_account"
    )
    stripe_customer_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    subscription_id = models.CharField(max_length=255, blank=True)
    subscription_status = models.CharField(max_length=32, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    grace_until = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="After a failed payment: the paid tier is kept until then."
    )
    card_fingerprint = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="Stripe's card fingerprint; links sign-up rings."
    )
    last_subscription_event_at = models.DateTimeField(
        null=True, blank=True, help_text="Creation time of the newest applied event: older ones are ignored."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"billing account of organization {self.organization_id} ({self.stripe_customer_id or 'no customer'})"


class StripeEventStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    PROCESSED = "processed", "Processed"
    FAILED = "failed", "Failed"
    IGNORED = "ignored", "Ignored"


class StripeEvent(models.Model):
    """One webhook event, stored once under the unique constraint on Stripe's event id, then processed by a task."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    stripe_created = models.DateTimeField(help_text="The event's `created` at Stripe: the order of events.")
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    status = models.CharField(
        max_length=16, choices=StripeEventStatus.choices, default=StripeEventStatus.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When a worker last claimed it.")
    claimed_by = models.CharField(
        max_length=255, blank=True, help_text="The task that claimed it: a redelivery of that task may claim it again."
    )
    error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id} ({self.status})"


class Invoice(models.Model):
    """A Stripe invoice of an organization, for the dashboard's past invoices. Amounts are in cents."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="invoices")
    stripe_invoice_id = models.CharField(max_length=255, unique=True)
    number = models.CharField(max_length=64, blank=True)
    amount_due = models.BigIntegerField(default=0)
    amount_paid = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, blank=True)
    status = models.CharField(max_length=32, blank=True)
    hosted_invoice_url = models.URLField(max_length=1000, blank=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, help_text="The invoice's creation time at Stripe.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"invoice {self.number or self.stripe_invoice_id} ({self.status})"


class MeterReportStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class MeterReport(models.Model):
    """One organization's usage of one closed UTC day, sent to Stripe's billing meter under `identifier`, which
    Stripe deduplicates on: a retried report never bills twice."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="meter_reports")
    day = models.DateField()
    units = models.PositiveBigIntegerField(default=0)
    identifier = models.CharField(max_length=100, unique=True)
    status = models.CharField(
        max_length=16, choices=MeterReportStatus.choices, default=MeterReportStatus.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-day", "organization_id"]

    def __str__(self) -> str:
        return f"{self.identifier}: {self.units} units ({self.status})"


class StripeTierPrice(models.Model):
    """The Stripe ids of a tier's product, prices and meter, written by `manage.py sync_stripe_prices`. The amounts
    they were created from are kept so a re-run only creates a price when the tier's price changed."""

    tier = models.OneToOneField("tiers.Tier", on_delete=models.CASCADE, related_name="stripe_price")
    product_id = models.CharField(max_length=255, blank=True)
    base_price_id = models.CharField(max_length=255, blank=True)
    base_amount_cents = models.PositiveBigIntegerField(null=True, blank=True)
    metered_price_id = models.CharField(max_length=255, blank=True)
    metered_amount_decimal = models.CharField(max_length=40, blank=True, help_text="Cents per unit above included.")
    metered_included_units = models.PositiveBigIntegerField(null=True, blank=True)
    meter_id = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tier__sort_order"]

    def __str__(self) -> str:
        return f"Stripe prices of tier {self.tier_id}"
