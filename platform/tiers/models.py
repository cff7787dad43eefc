"""Pricing tiers are data: limits, prices and what a tier's answers contain live in rows staff can edit."""

from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

MAX_BATCH_LIMIT = 100


class ModelVariant(models.TextChoices):
    FULL = "full", "Full model"
    DEFENDED = "defended", "Defended model"


class OutputField(models.TextChoices):
    LABEL = "label", "Top-1 label"
    CONFIDENCE = "confidence", "Confidence of the top-1 label"
    PROBABILITIES = "probabilities", "Full probability vector"


class Tier(models.Model):
    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    description = models.CharField(max_length=255, blank=True)
    is_public = models.BooleanField(
        default=True, help_text="Public tiers can be chosen by customers; the others are assigned by staff."
    )
    model_variant = models.CharField(max_length=16, choices=ModelVariant.choices, default=ModelVariant.DEFENDED)
    requests_per_minute = models.PositiveIntegerField()
    requests_per_hour = models.PositiveIntegerField()
    requests_per_day = models.PositiveIntegerField()
    # Optional tighter limits for each single key; empty: a key may use all of its organization's limits.
    key_requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    key_requests_per_hour = models.PositiveIntegerField(null=True, blank=True)
    key_requests_per_day = models.PositiveIntegerField(null=True, blank=True)
    monthly_included_requests = models.PositiveBigIntegerField()
    overage_allowed = models.BooleanField(
        default=False, help_text="Off: the monthly included requests are a hard stop. On: overage is billed."
    )
    price_per_1000_overage = models.DecimalField(
        max_digits=10, decimal_places=4, default=Decimal("0"), validators=[MinValueValidator(Decimal("0"))]
    )
    monthly_base_price = models.DecimalField(
        max_digits=10, decimal_places=2, default=Decimal("0"), validators=[MinValueValidator(Decimal("0"))]
    )
    max_batch_size = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_BATCH_LIMIT)]
    )
    output_fields = ArrayField(models.CharField(max_length=16, choices=OutputField.choices), default=list)
    defenses = models.JSONField(
        default=dict,
        blank=True,
        help_text="Output defenses for this tier (serving.defenses.DefenseConfig fields). Empty: answers are never "
        "perturbed (the enterprise tier).",
    )
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "code"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(max_batch_size__gte=1, max_batch_size__lte=MAX_BATCH_LIMIT),
                name="tier_max_batch_size_range",
            ),
            models.CheckConstraint(
                condition=models.Q(requests_per_minute__gte=1, requests_per_hour__gte=1, requests_per_day__gte=1),
                name="tier_rate_limits_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if OutputField.LABEL not in (self.output_fields or []):
            raise ValidationError({"output_fields": "Every tier returns at least the label."})
        if OutputField.PROBABILITIES in (self.output_fields or []) and self.model_variant != ModelVariant.FULL:
            raise ValidationError({"output_fields": "Probability vectors are only served with the full model."})
        if self.is_public and not self.defenses:
            raise ValidationError({"defenses": "Public tiers are served with output defenses."})
        from serving.defenses import DefenseConfig

        try:
            # A top-k above a model's class count answers all its classes: a tier's setting fits models of any width.
            DefenseConfig.from_dict(self.defenses or {})
        except (ValueError, TypeError) as exc:
            raise ValidationError({"defenses": str(exc)}) from exc
