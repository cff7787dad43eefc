"""The query log: one row per API call, the evidence for abuse detection and the usage that bills customers.

In PostgreSQL the table is range-partitioned by month on created_at (migration 0005, `partitions.py`): its
database key is (id, created_at) while Django knows `id` as the primary key, and a record is unique by
(request_id, created_at). Query it with a created_at range wherever the question has one: that is what lets
PostgreSQL read only the partitions of that range.
"""

from django.contrib.postgres.fields import ArrayField
from django.db import models


class QueryLog(models.Model):
    # Not unique alone: a partitioned table's unique constraints must contain the partition key. A record carries its
    # created_at, so a re-flushed one conflicts on (request_id, created_at) all the same (Meta.constraints).
    request_id = models.UUIDField(
        help_text="Idempotency: a record reaches PostgreSQL once (unique with its created_at)."
    )
    created_at = models.DateTimeField(db_index=True)
    # No database constraint and no cascade: the log is evidence and billing history, it must outlive what it
    # names, and a record of a deleted organization must never block the flush of everyone else's. No single-column
    # index either: the (organization, created_at) and (api_key, created_at) indexes serve those lookups, and every
    # index is work for every flushed row.
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    api_key = models.ForeignKey(
        "apikeys.ApiKey",
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    tier_code = models.CharField(max_length=32)
    endpoint = models.CharField(max_length=32, help_text="predict, models or usage.")
    model_slug = models.CharField(max_length=64, blank=True)
    model_version = models.CharField(max_length=64, blank=True)
    variant = models.CharField(max_length=16, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    latency_us = models.PositiveIntegerField()
    status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=64, blank=True)
    limit_window = models.CharField(
        max_length=32, blank=True, help_text="For a throttled call (429): the window that refused it."
    )
    batch_size = models.PositiveSmallIntegerField(default=0)
    # Per input, in request order: the canonical input (`input_row_bytes` each: the model's schema codes, one to four
    # bytes per value; pruned after the retention period), its sha256, the label served, its confidence, and
    # whether a watermark answer was served.
    inputs = models.BinaryField(null=True, blank=True)
    input_row_bytes = models.PositiveIntegerField(default=0)
    input_hashes = models.BinaryField(null=True, blank=True)
    labels = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    clean_labels = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    confidences = ArrayField(models.FloatField(), default=list, blank=True)
    watermarked = ArrayField(models.BooleanField(), default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "created_at"]),
            models.Index(fields=["api_key", "created_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["request_id", "created_at"], name="predictions_querylog_request_id_created_at_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.status} {self.request_id}"

    @property
    def is_billable(self) -> bool:
        return self.endpoint == "predict" and self.status == 200
