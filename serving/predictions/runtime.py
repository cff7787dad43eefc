"""The models a web process serves, held in memory.

The process keeps every active version loaded: its ONNX graph in an onnxruntime session (made here, in the worker,
after the fork), its model's input schema, and the model's watermark regions under this server's secret (fitted on
the model's reference data). Artifacts and data files are verified by sha256 on load. Once a second the process
reads the registry's generation counter from Redis; when an operator activates another version the counter changes
and the process reloads, reusing the sessions and regions of what did not change, so a switch takes effect
everywhere within about a second, with no restart and no failed request. While PostgreSQL is unreachable the
process keeps serving the versions it has loaded and retries every second.

A model with no defended version is served to the public tiers as its full version through the tier's output
defenses (the admin and the docs say so); a model with only a defended version answers every tier with it.
"""

import logging
import threading
import time
from dataclasses import dataclass, replace

import numpy as np
import orjson
import redis

from core.db import DATABASE_UNAVAILABLE_ERRORS
from serving.inference import OnnxClassifier, Session, new_session
from serving.input_schema import InputSchema
from serving.ml.artifacts import read_verified
from serving.registry.models import ArtifactFormat, ModelVersion
from serving.registry.selectors import (
    model_reference_codes,
    model_schema,
    model_watermark,
    registry_generation,
    version_artifact_file,
    version_binding,
)
from serving.watermark import RegionWatermark
from tiers.models import ModelVariant

logger = logging.getLogger(__name__)

_CHECK_SECONDS = 1.0
_RELOAD_SECONDS = 300.0  # reload anyway now and then, should a generation bump ever be lost


@dataclass(frozen=True)
class ServingModel:
    slug: str
    description: str
    version: str
    variant: str
    class_labels: tuple[str, ...]
    class_labels_array: np.ndarray
    schema: InputSchema
    classifier: OnnxClassifier
    watermark: RegionWatermark
    example_input: tuple[float, ...]  # one of the model's natural inputs, for the docs
    has_defended: bool


@dataclass(frozen=True)
class _ModelData:
    """What a process derives once from a model's reference data (and its secret), whichever version answers."""

    watermark: RegionWatermark
    example_input: tuple[float, ...]


class _Registry:
    def __init__(self) -> None:
        self.models: dict[tuple[str, str], ServingModel] = {}
        self.generation: int | None = None
        self.checked_at = float("-inf")
        self.loaded_at = float("-inf")
        # Kept from one load to the next: a session per verified graph, regions per model's reference data.
        self._sessions: dict[str, Session] = {}
        self._model_data: dict[tuple[str, str], _ModelData] = {}
        self._lock = threading.Lock()

    def _load(
        self, version: ModelVersion, sessions: dict[str, Session], model_data: dict[tuple[str, str], _ModelData]
    ) -> ServingModel:
        model = version.model
        schema = model_schema(model=model)
        session = sessions.get(version.artifact_sha256) or self._sessions.get(version.artifact_sha256)
        if session is None:
            data = read_verified(version_artifact_file(version=version), expected_sha256=version.artifact_sha256)
            session = new_session(data)
        sessions[version.artifact_sha256] = session
        data_key = (
            model.reference_sha256,
            orjson.dumps([model.input_schema, len(model.class_labels)], option=orjson.OPT_SORT_KEYS).decode(),
        )
        data = model_data.get(data_key) or self._model_data.get(data_key)
        if data is None:
            reference = model_reference_codes(model=model)
            data = _ModelData(
                watermark=model_watermark(model=model, reference=reference),
                example_input=tuple(int(v) if v.is_integer() else v for v in schema.values(reference[0]).tolist()),
            )
        model_data[data_key] = data
        labels = tuple(model.class_labels)
        return ServingModel(
            slug=model.slug,
            description=model.description,
            version=version.version,
            variant=version.variant,
            class_labels=labels,
            class_labels_array=np.array(labels),
            schema=schema,
            classifier=OnnxClassifier(session, version_binding(version=version), schema),
            watermark=data.watermark,
            example_input=data.example_input,
            has_defended=False,
        )

    def _reload(self) -> None:
        loaded: dict[tuple[str, str], ServingModel] = {}
        sessions: dict[str, Session] = {}
        model_data: dict[tuple[str, str], _ModelData] = {}
        active = ModelVersion.objects.filter(is_active=True, artifact_format=ArtifactFormat.ONNX)
        for version in active.select_related("model"):
            try:
                loaded[(version.model.slug, version.variant)] = self._load(version, sessions, model_data)
            except Exception:
                # One bad artifact must not take the other models down; the version stays unserved and logged.
                logger.exception("could not load %s; it is not served", version)
        defended = {slug for slug, variant in loaded if variant == ModelVariant.DEFENDED}
        self.models = {key: replace(model, has_defended=key[0] in defended) for key, model in loaded.items()}
        self._sessions, self._model_data = sessions, model_data
        self.loaded_at = time.monotonic()

    def _loaded_once(self) -> bool:
        return self.loaded_at != float("-inf")

    def refresh(self) -> None:
        if time.monotonic() - self.checked_at < _CHECK_SECONDS and self._loaded_once():
            return
        # One thread checks and reloads at a time (threaded servers: gthread, granian's blocking threads). Before the
        # first load every thread waits for it: one that went on would find no model and answer 404 "no such model"
        # (seen under load on a fresh worker with 4 threads). Afterwards the others serve the models they have.
        if not self._lock.acquire(blocking=not self._loaded_once()):
            return
        try:
            self._refresh_locked()
        finally:
            self._lock.release()

    def _refresh_locked(self) -> None:
        now = time.monotonic()
        if now - self.checked_at < _CHECK_SECONDS and self._loaded_once():
            return  # another thread checked while this one waited
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
    """The active version of a model for a tier's variant: that variant's, else the model's other one (a model
    with no defended version is served full, through the tier's defenses); None when the model has none."""
    _registry.refresh()
    models = _registry.models
    found = models.get((slug, variant))
    if found is None:
        other = ModelVariant.FULL if variant == ModelVariant.DEFENDED else ModelVariant.DEFENDED
        found = models.get((slug, other))
    return found


def serving_models(*, variant: str) -> list[ServingModel]:
    """Every model a tier of this variant is served (see `serving_model`), by slug."""
    _registry.refresh()
    slugs = sorted({slug for slug, _ in _registry.models})
    found = (serving_model(slug=slug, variant=variant) for slug in slugs)
    return [model for model in found if model is not None]


def serving_models_reload() -> None:
    """Reload at the next request (tests, and operators' commands in the same process)."""
    _registry.checked_at = float("-inf")
    _registry.generation = None
