"""The model registry: a model is described by data (its input schema, class labels, reference data and optional
labelled held-out set) and has versions; each version is one variant (full or defended) with a verified ONNX
artifact, how Moat binds to its graph, its held-out metrics and the provenance of its training data. One version per
variant is active."""

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from tiers.models import ModelVariant


class ArtifactFormat(models.TextChoices):
    ONNX = "onnx", "ONNX graph"
    # Versions registered before the ONNX runtime: numpy MLP archives. Kept as history, never served again.
    LEGACY_NPZ = "npz", "numpy archive (retired)"


class MLModel(models.Model):
    slug = models.SlugField(max_length=64, unique=True, help_text="The id used in the API, e.g. 'digits'.")
    description = models.CharField(max_length=255)
    class_labels = ArrayField(models.CharField(max_length=64))
    input_schema = models.JSONField(
        help_text="What one input is (serving.input_schema): tabular features with bounds and grid steps, or an image "
        "with its size, value range and preprocessing."
    )
    # Natural inputs the operator supplied, as canonical codes (.npy): the watermark's regions and honest-cost bound,
    # abuse detection's profile and the defended model's distillation are fitted on them.
    reference_path = models.CharField(max_length=500, help_text="Relative to MODEL_ARTIFACT_DIR.")
    reference_sha256 = models.CharField(max_length=64)
    reference_rows = models.PositiveIntegerField()
    # Optionally, labelled natural inputs no version trained on (.npz of canonical inputs and class indices): every
    # version's held-out accuracy is measured on them.
    heldout_path = models.CharField(max_length=500, blank=True)
    heldout_sha256 = models.CharField(max_length=64, blank=True)
    heldout_rows = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slug"]
        verbose_name = "model"

    def __str__(self) -> str:
        return self.slug


class ModelVersion(models.Model):
    model = models.ForeignKey(MLModel, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(max_length=64, help_text="Unique per model and variant, e.g. '2026.11.22-1'.")
    variant = models.CharField(max_length=16, choices=ModelVariant.choices)
    artifact_path = models.CharField(max_length=500, help_text="Relative to MODEL_ARTIFACT_DIR.")
    artifact_sha256 = models.CharField(max_length=64)
    artifact_format = models.CharField(max_length=8, choices=ArtifactFormat.choices, default=ArtifactFormat.ONNX)
    # How Moat binds to the graph (serving.inference.GraphBinding), checked against the schema at registration.
    input_name = models.CharField(max_length=128, blank=True)
    input_layout = models.CharField(max_length=8, blank=True, help_text="flat, NCHW, NHWC or NHW.")
    output_name = models.CharField(max_length=128, blank=True)
    output_kind = models.CharField(max_length=16, blank=True, help_text="logits or probabilities.")
    embedding_output = models.CharField(max_length=128, blank=True, help_text="The penultimate layer, if named.")
    metrics = models.JSONField(default=dict, help_text="Held-out accuracy and training figures.")
    provenance = models.JSONField(default=dict, help_text="Training data set, its hash and row counts.")
    input_profile = models.JSONField(
        default=dict,
        blank=True,
        help_text="The natural inputs' distribution (abuse.extraction.InputProfile), fitted on the training data; "
        "abuse detection measures how unnatural a customer's queries are against it. Empty: not known.",
    )
    dp_epsilon = models.FloatField(null=True, blank=True, help_text="Privacy budget spent, for DP-SGD training.")
    dp_delta = models.FloatField(null=True, blank=True)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model", "variant", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["model", "variant", "version"], name="model_version_unique"),
            models.UniqueConstraint(
                fields=["model", "variant"], condition=models.Q(is_active=True), name="one_active_version_per_variant"
            ),
            # `<slug>-<variant>-<version>.npz` is not injective (slug "x-full" + variant "defended" + version "1"
            # vs slug "x" + "full" + "defended-1"): without this, one registration could overwrite another's file.
            models.UniqueConstraint(fields=["artifact_path"], name="model_version_artifact_path_unique"),
            models.CheckConstraint(
                condition=~models.Q(is_active=True, artifact_format="npz"), name="model_version_retired_never_active"
            ),
            # A DP guarantee is a pair; epsilon alone (or delta alone) is not a statement about privacy. The
            # explicit IS NOT NULLs matter: a CHECK passes when its condition is NULL, as `NULL > 0` is.
            models.CheckConstraint(
                condition=models.Q(dp_epsilon__isnull=True, dp_delta__isnull=True)
                | models.Q(
                    dp_epsilon__isnull=False,
                    dp_delta__isnull=False,
                    dp_epsilon__gte=0,
                    dp_delta__gt=0,
                    dp_delta__lt=1,
                ),
                name="model_version_dp_epsilon_delta_pair",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.slug} {self.variant} {self.version}"
