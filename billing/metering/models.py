"""Usage rows: what each organization used on each UTC day, per tier. A pure function of the query log."""

from django.db import models


class UsageDay(models.Model):
    """Billable usage of one organization on one UTC day under one tier.

    Recomputed from `QueryLog` (never incremented), so the row is always what the log says: re-running an
    aggregation cannot double-count, and a worker killed half-way loses nothing (the next run recomputes).
    """

    # No database constraint and no cascade, like QueryLog: usage is billing history and outlives what it names.
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    day = models.DateField(help_text="The UTC day of the calls.")
    tier_code = models.CharField(max_length=32, help_text="The tier the calls were served under.")
    requests = models.PositiveBigIntegerField(default=0, help_text="Billable calls (predict, answered 200).")
    units = models.PositiveBigIntegerField(default=0, help_text="Inputs in those calls: the billed quantity.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-day", "organization_id", "tier_code"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "day", "tier_code"], name="usageday_org_day_tier_unique")
        ]

    def __str__(self) -> str:
        return f"usage of organization {self.organization_id} on {self.day} ({self.tier_code}): {self.units} units"
