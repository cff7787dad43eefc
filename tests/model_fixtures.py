"""Fixtures of the registered demo model, for every test that serves or scores predictions (a pytest plugin of the
root conftest).

The real demo model is trained once per session, by the real command (`demo_run`): it runs inside a transaction
that is then rolled back, so the database stays empty for every test, and the artifacts and recorded rows are
kept for tests to inspect or re-register cheaply (`registered_digits`).
"""

import shutil
import time
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings

from serving.ml.artifacts import load_artifact
from serving.ml.demo import DemoModels, TrainedVariant
from serving.registry.models import ModelVersion
from serving.registry.services import model_get_or_create_digits, version_register


@dataclass(frozen=True)
class DemoRun:
    models: DemoModels  # the weights as read back from the artifacts the command wrote
    artifacts: dict[str, Path]  # variant -> a copy of its artifact
    rows: dict[str, dict[str, Any]]  # variant -> the ModelVersion values the command recorded
    stdout: str
    seconds: float  # wall-clock time of the whole command


@pytest.fixture(scope="session")
def demo_run(django_db_setup, django_db_blocker, tmp_path_factory) -> DemoRun:
    artifact_dir = tmp_path_factory.mktemp("demo-artifact-dir")
    kept = tmp_path_factory.mktemp("demo-artifacts")
    out = StringIO()
    with (
        django_db_blocker.unblock(),
        override_settings(MODEL_ARTIFACT_DIR=str(artifact_dir)),
        transaction.atomic(),
    ):
        started = time.perf_counter()
        call_command("train_demo_model", stdout=out, stderr=StringIO())
        seconds = time.perf_counter() - started
        rows = {
            row["variant"]: row
            for row in ModelVersion.objects.filter(model__slug="digits").values(
                "variant",
                "version",
                "artifact_path",
                "artifact_sha256",
                "metrics",
                "provenance",
                "is_active",
                "dp_epsilon",
                "dp_delta",
                "input_profile",
            )
        }
        transaction.set_rollback(True)  # leave the test database as it was
    artifacts = {}
    trained = {}
    for variant, row in rows.items():
        artifacts[variant] = Path(shutil.copy(artifact_dir / row["artifact_path"], kept / row["artifact_path"]))
        trained[variant] = TrainedVariant(
            variant=variant,
            weights=load_artifact(artifacts[variant], expected_sha256=row["artifact_sha256"]),
            metrics=row["metrics"],
            provenance=row["provenance"],
        )
    models = DemoModels(full=trained["full"], defended=trained["defended"], seconds=seconds)
    return DemoRun(models=models, artifacts=artifacts, rows=rows, stdout=out.getvalue(), seconds=seconds)


@pytest.fixture
def model_artifact_dir(settings, tmp_path) -> Path:
    """A fresh, empty MODEL_ARTIFACT_DIR for the test."""
    path = tmp_path / "models"
    settings.MODEL_ARTIFACT_DIR = str(path)
    return path


@pytest.fixture
def registered_digits(db, model_artifact_dir, demo_run) -> dict[str, ModelVersion]:
    """The demo `digits` model with its full and defended versions registered and active, in this test's
    database and artifact directory."""
    model = model_get_or_create_digits()
    return {
        variant: version_register(
            model=model,
            variant=variant,
            version=row["version"],
            artifact_file=demo_run.artifacts[variant],
            metrics=row["metrics"],
            provenance=row["provenance"],
            input_profile=row["input_profile"],
            activate=True,
        )
        for variant, row in demo_run.rows.items()
    }
