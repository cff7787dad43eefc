from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by webhooks, tasks and jobs, or kept as evidence: staff look, never edit."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
