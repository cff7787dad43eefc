from django.contrib import admin

from redteam.models import RedTeamRun


@admin.register(RedTeamRun)
class RedTeamRunAdmin(admin.ModelAdmin):
    list_display = ["finished_at", "base_url", "budget", "report_dir"]
    readonly_fields = ["started_at", "finished_at", "base_url", "budget", "summary", "report_dir"]

    def has_add_permission(self, request) -> bool:
        return False  # runs come from `manage.py redteam` only
