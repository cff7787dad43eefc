"""Each red-team run's summary, kept so the console can price cloning from the latest measurement."""

from django.db import models


class RedTeamRun(models.Model):
    """One run of `manage.py redteam`: when, against what, with which budget, and its summary (the JSON document
    `redteam.exercise.run_exercise` returns; each model section's `tiers` and kind campaigns are what the console
    reads: `redteam.selectors`).
    Runs are history: a new one is added, none is changed."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(db_index=True)
    base_url = models.CharField(max_length=255)
    budget = models.PositiveIntegerField()
    summary = models.JSONField()
    report_dir = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-finished_at", "-pk"]
        get_latest_by = ["finished_at", "pk"]

    def __str__(self) -> str:
        return f"Red-team run of {self.finished_at:%Y-%m-%d %H:%M} against {self.base_url}"
