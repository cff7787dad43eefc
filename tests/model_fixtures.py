"""Fixtures of the registered demo models, for every test that serves or scores predictions (a pytest plugin of the
root conftest).

The demo models are trained and registered once per session by the real registration code (`demo_run`), inside a
transaction that is then rolled back, so the database stays empty for every test; the artifacts and data files are
kept for tests to re-register cheaply (`registered_digits`, `registered_breast_cancer`), through the same services
an operator's registration goes through.
"""

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings

from serving.inference import GraphBinding, OnnxClassifier
from serving.input_schema import InputSchema
from serving.ml import breast_cancer, digits
from serving.ml.artifacts import array_bytes, arrays_bytes, load_array, load_arrays
from serving.ml.digits_models import DemoModels, train_demo_models
from serving.registry.demo_models import register_breast_cancer, register_digits
from serving.registry.models import MLModel, ModelVersion
from serving.registry.selectors import model_get
from serving.registry.services import model_create, version_register

VERSION = "2026.12.01-test"


@dataclass(frozen=True)
class RegisteredDemo:
    model: dict[str, Any]  # the MLModel values the registration recorded
    versions: dict[str, dict[str, Any]]  # variant -> the ModelVersion values
    files: dict[str, Path]  # "reference", "heldout" and each variant -> a copy of the file


@dataclass(frozen=True)
class DemoRun:
    models: DemoModels  # the digits models as trained (numpy), before their export to ONNX
    demos: dict[str, RegisteredDemo]  # slug -> what was registered
    seconds: float  # wall-clock time of the whole registration

    def classifier(self, slug: str, variant: str) -> OnnxClassifier:
        """A session on the registered graph, as the API serves it."""
        demo = self.demos[slug]
        row = demo.versions[variant]
        binding = GraphBinding(
            input_name=row["input_name"],
            input_layout=row["input_layout"],
            output_name=row["output_name"],
            output_kind=row["output_kind"],
            embedding_output=row["embedding_output"],
        )
        schema = InputSchema.from_dict(demo.model["input_schema"])
        return OnnxClassifier.from_bytes(demo.files[variant].read_bytes(), binding, schema)


@pytest.fixture(scope="session")
def demo_run(django_db_setup, django_db_blocker, tmp_path_factory) -> DemoRun:
    artifact_dir = tmp_path_factory.mktemp("demo-artifact-dir")
    kept = tmp_path_factory.mktemp("demo-artifacts")
    demos = {}
    with (
        django_db_blocker.unblock(),
        override_settings(MODEL_ARTIFACT_DIR=str(artifact_dir)),
        transaction.atomic(),
    ):
        started = time.perf_counter()
        trained = train_demo_models()
        register_digits(trained=trained, version=VERSION, only_missing=False)
        register_breast_cancer(version=VERSION, only_missing=False)
        seconds = time.perf_counter() - started
        for slug in (digits.SLUG, breast_cancer.SLUG):
            model = model_get(slug=slug)
            files = {
                "reference": Path(shutil.copy(artifact_dir / model.reference_path, kept / model.reference_path)),
                "heldout": Path(shutil.copy(artifact_dir / model.heldout_path, kept / model.heldout_path)),
            }
            versions = {}
            for row in ModelVersion.objects.filter(model=model).values():
                versions[row["variant"]] = row
                files[row["variant"]] = Path(
                    shutil.copy(artifact_dir / row["artifact_path"], kept / row["artifact_path"])
                )
            values = MLModel.objects.filter(pk=model.pk).values().get()
            demos[slug] = RegisteredDemo(model=values, versions=versions, files=files)
        transaction.set_rollback(True)  # leave the test database as it was
    return DemoRun(models=trained, demos=demos, seconds=seconds)


@pytest.fixture
def model_artifact_dir(settings, tmp_path) -> Path:
    """A fresh, empty MODEL_ARTIFACT_DIR for the test."""
    path = tmp_path / "models"
    settings.MODEL_ARTIFACT_DIR = str(path)
    return path


def register_demo_again(
    demo: RegisteredDemo, *, variants: tuple[str, ...] = ("full", "defended")
) -> dict[str, ModelVersion]:
    """The demo model with its versions registered and active, in this test's database and artifact directory,
    from the files the session's registration made."""
    # The stored files hold canonical codes; a registration takes values.
    schema = InputSchema.from_dict(demo.model["input_schema"])
    heldout = load_arrays(demo.files["heldout"].read_bytes())
    model = model_create(
        slug=demo.model["slug"],
        description=demo.model["description"],
        class_labels=demo.model["class_labels"],
        input_schema=demo.model["input_schema"],
        reference_data=array_bytes(schema.values(load_array(demo.files["reference"].read_bytes()))),
        reference_name="reference.npy",
        heldout_data=arrays_bytes({"inputs": schema.values(heldout["inputs"]), "labels": heldout["labels"]}),
        heldout_name="heldout.npz",
    )
    registered = {}
    for variant in variants:
        row = demo.versions[variant]
        registered[variant] = version_register(
            model=model,
            variant=variant,
            version=row["version"],
            onnx_bytes=demo.files[variant].read_bytes(),
            input_name=row["input_name"],
            input_layout=row["input_layout"],
            output_name=row["output_name"],
            output_kind=row["output_kind"],
            embedding_output=row["embedding_output"],
            metrics=row["metrics"],
            provenance=row["provenance"],
            input_profile=row["input_profile"],
            activate=True,
        )
    return registered


@pytest.fixture
def registered_digits(db, model_artifact_dir, demo_run) -> dict[str, ModelVersion]:
    """The demo `digits` model with its full and defended versions registered and active, in this test's
    database and artifact directory."""
    return register_demo_again(demo_run.demos[digits.SLUG])


@pytest.fixture
def registered_breast_cancer(db, model_artifact_dir, demo_run) -> dict[str, ModelVersion]:
    """The demo `breast-cancer` model (tabular), full and defended, registered and active."""
    return register_demo_again(demo_run.demos[breast_cancer.SLUG])
