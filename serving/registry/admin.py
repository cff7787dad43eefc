from collections import Counter

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_http_methods

from core.errors import ApplicationError
from serving.input_schema import InputSchema
from serving.ml.artifacts import ArtifactError
from serving.registry.forms import RegisterModelVersionForm
from serving.registry.models import MLModel, ModelVersion
from serving.registry.selectors import active_version, model_watermark_calibrations
from serving.registry.services import version_activate
from serving.registry.workflows import model_register_version
from tiers.models import ModelVariant


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    fields = ("variant", "version", "is_active", "artifact_format", "output_kind", "dp_epsilon", "created_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: MLModel | None = None) -> bool:
        return False  # versions come from the registration (form, `register_model`), which checks the graph

    def has_delete_permission(self, request: HttpRequest, obj: MLModel | None = None) -> bool:
        return False


@admin.register(MLModel)
class MLModelAdmin(admin.ModelAdmin):
    list_display = ("slug", "description", "input_kind", "class_count", "public_tiers_served", "created_at")
    search_fields = ("slug", "description")
    inlines = (ModelVersionInline,)
    fields = (
        "slug",
        "description",
        "class_labels",
        "input_summary",
        "public_tiers_served",
        "watermark_figures",
        "reference_rows",
        "heldout_rows",
        "input_schema",
        "created_at",
    )
    change_list_template = "admin/registry/mlmodel/change_list.html"

    def get_readonly_fields(self, request: HttpRequest, obj: MLModel | None = None) -> list[str]:
        # Versions were checked against the schema, classes and data: only the description is edited here.
        return [name for name in self.fields if name != "description"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a model is created by registering its first version (the form below, `register_model`)

    def get_urls(self):
        register = self.admin_site.admin_view(require_http_methods(["GET", "POST"])(self.register_view))
        return [path("register/", register, name="registry_mlmodel_register"), *super().get_urls()]

    @admin.display(description="input")
    def input_kind(self, obj: MLModel) -> str:
        return obj.input_schema.get("kind", "")

    @admin.display(description="classes")
    def class_count(self, obj: MLModel) -> int:
        return len(obj.class_labels)

    @admin.display(description="input")
    def input_summary(self, obj: MLModel) -> str:
        schema = InputSchema.from_dict(obj.input_schema)
        return f"{schema.describe_input()} ({schema.n_features} values, {schema.row_bytes} bytes logged per input)"

    @admin.display(description="public tiers served")
    def public_tiers_served(self, obj: MLModel) -> str:
        if active_version(model_slug=obj.slug, variant=ModelVariant.DEFENDED) is not None:
            return "the defended version, through the tiers' output defenses"
        if active_version(model_slug=obj.slug, variant=ModelVariant.FULL) is not None:
            return (
                "the FULL version, through the tiers' output defenses only (no defended version: run "
                "`manage.py distill_defended_model` or register one)"
            )
        return "nothing (no active version)"

    @admin.display(description="watermark per tier")
    def watermark_figures(self, obj: MLModel) -> str:
        try:
            tiers = model_watermark_calibrations(model=obj)
        except ArtifactError as exc:
            return f"Not available: {exc}"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    tier.tier_name,
                    f"{tier.calibration.fraction:.2%}",
                    f"{tier.calibration.reference_share:.2%}",
                    "—" if tier.calibration.heldout_share is None else f"{tier.calibration.heldout_share:.2%}",
                    f"{tier.calibration.threshold:.2%}",
                    tier.warning,
                )
                for tier in tiers
            ),
        )
        return format_html(
            "<table><thead><tr><th>tier</th><th>fraction</th><th>reference inputs watermarked</th>"
            "<th>held-out inputs watermarked</th><th>regions marked</th><th>warning</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    def register_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("registry.add_modelversion"):
            raise PermissionDenied
        form = RegisterModelVersionForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            reference, heldout = data["reference_data"], data["heldout"]
            try:
                version = model_register_version(
                    slug=data["slug"],
                    variant=data["variant"],
                    version=data["version"],
                    onnx_bytes=data["onnx"].read(),
                    activate=data["activate"],
                    description=data["description"],
                    class_labels=data["classes"],
                    input_schema=data["schema"],
                    reference_data=reference.read() if reference else None,
                    reference_name=reference.name if reference else "",
                    heldout_data=heldout.read() if heldout else None,
                    heldout_name=heldout.name if heldout else "",
                    input_name=data["input_name"] or None,
                    input_layout=data["input_layout"] or None,
                    output_name=data["output_name"] or None,
                    output_kind=data["output_kind"] or None,
                    embedding_output=data["embedding_output"] or None,
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                state = "active" if version.is_active else "inactive"
                self.message_user(request, f"Registered {version} ({state}).", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:registry_mlmodel_change", args=[version.model_id]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Register a model version",
            "form": form,
        }
        return TemplateResponse(request, "admin/registry/mlmodel/register.html", context)


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
