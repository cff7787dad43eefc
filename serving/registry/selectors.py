"""Reads of the model registry, and where its artifacts live."""

from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet

from core.errors import NotFoundError
from serving.registry.models import MLModel, ModelVersion

# Bumped after every activation commits; serving processes poll it to know when to reload (see services.py).
GENERATION_KEY = "registry:generation"


def artifact_dir() -> Path:
    """The directory that `ModelVersion.artifact_path` is relative to (settings.MODEL_ARTIFACT_DIR)."""
    return Path(getattr(settings, "MODEL_ARTIFACT_DIR", Path(settings.BASE_DIR) / ".moat" / "models"))


def version_artifact_file(*, version: ModelVersion) -> Path:
    """The absolute path of a version's artifact. Refuses a stored path that would leave the artifact directory
    (the column is written only by `version_register`, but a hand-edited row must not read arbitrary files)."""
    directory = artifact_dir().resolve()
    path = (directory / version.artifact_path).resolve()
    if not path.is_relative_to(directory):
        raise NotFoundError(f"Artifact path of {version} is outside the artifact directory.")
    return path


def registry_generation() -> int:
    """The registry's generation counter: it changes whenever an active version changes. 0 before the first
    switch. Redis errors propagate: the caller decides whether to keep serving what it has."""
    return int(cache.get(GENERATION_KEY, 0))


def model_list() -> QuerySet[MLModel]:
    """Every model, by slug."""
    return MLModel.objects.order_by("slug")


def model_get(*, slug: str) -> MLModel:
    """The model with this slug; NotFoundError when there is none."""
    model = MLModel.objects.filter(slug=slug).first()
    if model is None:
        raise NotFoundError(f"No model '{slug}'.")
    return model


def active_version(*, model_slug: str, variant: str) -> ModelVersion | None:
    """The active version of a model in a variant (with its model loaded), or None."""
    return (
        ModelVersion.objects.select_related("model")
        .filter(model__slug=model_slug, variant=variant, is_active=True)
        .first()
    )


def version_list(*, model_slug: str) -> QuerySet[ModelVersion]:
    """A model's versions, newest first within each variant."""
    return ModelVersion.objects.select_related("model").filter(model__slug=model_slug)


def version_get(*, model_slug: str, variant: str, version: str) -> ModelVersion:
    """One version of a model; NotFoundError when there is none."""
    found = version_list(model_slug=model_slug).filter(variant=variant, version=version).first()
    if found is None:
        raise NotFoundError(f"No version '{version}' of model '{model_slug}' in variant '{variant}'.")
    return found
