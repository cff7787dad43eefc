from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.models import FailedTask
from core.services import failed_task_dismiss, failed_task_run_again


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by webhooks, tasks and jobs, or kept as evidence: staff look, never edit."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(FailedTask)
class FailedTaskAdmin(ReadOnlyAdmin):
    """The dead letters: tasks given up on (core.jobs). Staff run one again or dismiss it."""

    list_display = ("parked_at", "task_name", "reason", "attempts", "resolved_at", "resolved_by")
    list_filter = ("reason", "task_name", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("task_id", "task_name")
    date_hierarchy = "parked_at"
    actions = ["run_again", "dismiss"]

    def has_rerun_permission(self, request: HttpRequest) -> bool:
        # The rows are read-only, so the actions have their own permission: the model's change permission.
        return request.user.has_perm("core.change_failedtask")

    @admin.action(description="Run the selected tasks again", permissions=["rerun"])
    def run_again(self, request: HttpRequest, queryset: QuerySet[FailedTask]) -> None:
        actor = f"admin:{request.user.email}"
        enqueued = [
            pk for pk in queryset.values_list("pk", flat=True) if failed_task_run_again(failed_task_id=pk, actor=actor)
        ]
        self.message_user(request, f"{len(enqueued)} task(s) enqueued again.", messages.SUCCESS)

    @admin.action(description="Dismiss the selected tasks", permissions=["rerun"])
    def dismiss(self, request: HttpRequest, queryset: QuerySet[FailedTask]) -> None:
        actor = f"admin:{request.user.email}"
        dismissed = [
            pk for pk in queryset.values_list("pk", flat=True) if failed_task_dismiss(failed_task_id=pk, actor=actor)
        ]
        self.message_user(request, f"{len(dismissed)} task(s) dismissed.", messages.SUCCESS)
