from collections import Counter

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.errors import ApplicationError
from serving.registry.models import MLModel, ModelVersion
from serving.registry.services import version_activate


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    fields = ("variant", "version", "is_active", "dp_epsilon", "created_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: MLModel | None = None) -> bool:
        return False  # versions come from `register_model_version` / `train_demo_model`, which verify the artifact

    def has_delete_permission(self, request: HttpRequest, obj: MLModel | None = None) -> bool:
        return False


@admin.register(MLModel)
class MLModelAdmin(admin.ModelAdmin):
    list_display = ("slug", "description", "input_shape", "created_at")
    search_fields = ("slug", "description")
    inlines = (ModelVersionInline,)

    def get_readonly_fields(self, request: HttpRequest, obj: MLModel | None = None) -> tuple[str, ...]:
        if obj is not None and obj.versions.exists():
            # The registered artifacts were checked against these; changing them would break serving.
            return ("slug", "class_labels", "input_shape", "input_min", "input_max", "created_at")
        return ("created_at",)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("model", "variant", "version", "is_active", "holdout_accuracy", "dp_epsilon", "created_at")
    list_filter = ("model", "variant", "is_active")
    search_fields = ("version", "model__slug")
    actions = ("activate_versions",)

    def get_readonly_fields(self, request: HttpRequest, obj: ModelVersion | None = None) -> list[str]:
        # A version is a record of a verified artifact: nothing about it is edited, only which one is active.
        return [field.name for field in ModelVersion._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ModelVersion | None = None) -> bool:
        return False  # the history of what was served stays

    @admin.display(description="held-out accuracy")
    def holdout_accuracy(self, obj: ModelVersion) -> float | None:
        return obj.metrics.get("holdout_accuracy") if isinstance(obj.metrics, dict) else None

    @admin.action(
        description="Activate the selected versions (each replaces the active one of its variant)",
        permissions=["change"],  # viewers may look, only people who may change versions may switch them
    )
    def activate_versions(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        versions = list(queryset.select_related("model"))
        clashes = [key for key, count in Counter((v.model_id, v.variant) for v in versions).items() if count > 1]
        if clashes:
            self.message_user(
                request, "Select at most one version per model and variant: only one can be active.", messages.ERROR
            )
            return
        for version in versions:
            try:
                version_activate(version=version)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"{version} is now active.", messages.SUCCESS)
