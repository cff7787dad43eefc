from django.contrib import admin

from billing.metering.models import UsageDay


@admin.register(UsageDay)
class UsageDayAdmin(admin.ModelAdmin):
    """Read-only: usage rows are derived from the query log; an edit would be overwritten by the next run."""

    list_display = ("day", "organization_id", "tier_code", "requests", "units", "updated_at")
    list_filter = ("tier_code", "day")
    date_hierarchy = "day"
    ordering = ("-day", "organization_id", "tier_code")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
