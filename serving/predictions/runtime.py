"""The models a web process serves, held in memory.

The process keeps every active version loaded (artifacts verified by sha256 on load). Once a second it reads the
registry's generation counter from Redis; when an operator activates another version the counter changes and the
process reloads, so a switch takes effect everywhere within about a second, with no restart and no failed request.
While PostgreSQL is unreachable the process keeps serving the versions it has loaded and retries every second.
"""

import logging
import time
from dataclasses import dataclass

import numpy as np
import redis

from core.db import DATABASE_UNAVAILABLE_ERRORS
from serving.ml.artifacts import load_artifact
from serving.ml.mlp import MLPWeights
from serving.registry.models import ModelVersion
from serving.registry.selectors import artifact_dir, registry_generation

logger = logging.getLogger(__name__)

_CHECK_SECONDS = 1.0
_RELOAD_SECONDS = 300.0  # reload anyway now and then, should a generation bump ever be lost


@dataclass(frozen=True)
class ServingModel:
    slug: str
    version: str
    variant: str
    class_labels: tuple[str, ...]
    input_shape: tuple[int, ...]
    input_min: float
    input_max: float
    weights: MLPWeights
    class_labels_array: np.ndarray


class _Registry:
    def __init__(self) -> None:
        self.models: dict[tuple[str, str], ServingModel] = {}
        self.generation: int | None = None
        self.checked_at = float("-inf")
        self.loaded_at = float("-inf")

    def _reload(self) -> None:
        models = {}
        for version in ModelVersion.objects.filter(is_active=True).select_related("model"):
            try:
                weights = load_artifact(artifact_dir() / version.artifact_path, expected_sha256=version.artifact_sha256)
            except Exception:
                # One bad artifact must not take the other models down; the version stays unserved and logged.
                logger.exception("could not load %s; it is not served", version)
                continue
            labels = tuple(version.model.class_labels)
            models[(version.model.slug, version.variant)] = ServingModel(
                slug=version.model.slug,
                version=version.version,
                variant=version.variant,
                class_labels=labels,
                input_shape=tuple(version.model.input_shape),
                input_min=version.model.input_min,
                input_max=version.model.input_max,
                weights=weights,
                class_labels_array=np.array(labels),
            )
        self.models = models
        self.loaded_at = time.monotonic()

    def refresh(self) -> None:
        now = time.monotonic()
        if now - self.checked_at < _CHECK_SECONDS:
            return
        self.checked_at = now
        try:
            generation = registry_generation()
        except redis.RedisError:
            generation = self.generation  # keep serving what we have; Redis trouble is answered elsewhere
        if generation != self.generation or now - self.loaded_at > _RELOAD_SECONDS:
            try:
                self._reload()
            except DATABASE_UNAVAILABLE_ERRORS:
                if not self.models:
                    raise  # nothing to serve yet: the caller answers 503
                # PostgreSQL is away (a restart): keep serving what is loaded and try again at the next check.
                logger.warning("the model registry could not be re-read; serving the versions loaded before")
                return
            self.generation = generation


_registry = _Registry()


def serving_model(*, slug: str, variant: str) -> ServingModel | None:
    """The active version of a model in a variant, or None when there is none."""
    _registry.refresh()
    return _registry.models.get((slug, variant))


def serving_models(*, variant: str) -> list[ServingModel]:
    """Every model with an active version in the variant, by slug."""
    _registry.refresh()
    return sorted((m for (_, v), m in _registry.models.items() if v == variant), key=lambda m: m.slug)


def serving_models_reload() -> None:
    """Reload at the next request (tests, and operators' commands in the same process)."""
    _registry.checked_at = float("-inf")
    _registry.generation = None
