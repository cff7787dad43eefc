"""`manage.py register_model_version SLUG NPZ --variant {full,defended} --version V [--activate] ...`

Register an operator's own artifact (layout in `serving.ml.artifacts`) as a version of a model. The artifact is
verified (format, shapes, class labels) and copied into the artifact directory. `--create-model` creates the model
first (64 inputs, values --input-min..--input-max), in the same transaction.
"""

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from django.core.management.base import CommandError, CommandParser
from django.db import transaction

from core.errors import ApplicationError
from serving.registry.management.base import VersionOptionCommand
from serving.registry.selectors import model_get
from serving.registry.services import model_create, version_register
from tiers.models import ModelVariant


def _json_object(path: str | None, what: str) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"Cannot read {what} from {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise CommandError(f"The {what} file must hold a JSON object.")
    return value


def _input_profile(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    from abuse.extraction import InputProfile  # the abuse app owns the profile's definition

    try:
        rows = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CommandError(f"Cannot read reference inputs from {path}: {exc}") from exc
    if rows.ndim != 2 or rows.shape[0] < 2 * rows.shape[1] or not np.isfinite(rows).all():
        raise CommandError(
            "--reference-inputs must hold a finite 2-D array with at least twice as many rows as features."
        )
    return InputProfile.fit(np.asarray(rows, dtype=np.float64)).to_dict()


class Command(VersionOptionCommand):
    help = "Verify an .npz artifact and register it as a version of a model (optionally activating it)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The model's slug, e.g. digits.")
        parser.add_argument("npz", help="Path of the .npz artifact.")
        parser.add_argument("--variant", required=True, choices=ModelVariant.values)
        parser.add_argument("--version", required=True, help="Unique per model and variant, e.g. 2026.11.22-1.")
        parser.add_argument("--activate", action="store_true", help="Make it the active version of its variant.")
        parser.add_argument("--metrics-json", default=None, help="File with a JSON object of metrics.")
        parser.add_argument("--provenance-json", default=None, help="File with a JSON object describing the data.")
        parser.add_argument("--dp-epsilon", type=float, default=None, help="Privacy budget spent (with --dp-delta).")
        parser.add_argument("--dp-delta", type=float, default=None)
        parser.add_argument(
            "--reference-inputs",
            default=None,
            help="A .npy file of natural inputs (rows x features, e.g. the training data): abuse detection measures "
            "how far customers' queries are from them. Without it, that signal is off for this version.",
        )
        model = parser.add_argument_group("creating the model")
        model.add_argument("--create-model", action="store_true", help="Create the model; it must not exist.")
        model.add_argument("--description", default="", help="With --create-model.")
        model.add_argument("--classes", default=None, help="With --create-model: class labels, comma-separated.")
        model.add_argument("--input-features", type=int, default=64, help="With --create-model (default 64).")
        model.add_argument("--input-min", type=float, default=0.0, help="With --create-model (default 0).")
        model.add_argument("--input-max", type=float, default=16.0, help="With --create-model (default 16).")

    def handle(self, *args, **options) -> None:
        metrics = _json_object(options["metrics_json"], "metrics")
        provenance = _json_object(options["provenance_json"], "provenance")
        input_profile = _input_profile(options["reference_inputs"])
        for key in ("dp_epsilon", "dp_delta"):
            if options[key] is not None and not math.isfinite(options[key]):
                raise CommandError(f"--{key.replace('_', '-')} must be a finite number.")
        try:
            with transaction.atomic():
                model = self._model(options)
                version = version_register(
                    model=model,
                    variant=options["variant"],
                    version=options["version"],
                    artifact_file=Path(options["npz"]),
                    metrics=metrics,
                    provenance=provenance,
                    dp_epsilon=options["dp_epsilon"],
                    dp_delta=options["dp_delta"],
                    input_profile=input_profile,
                    activate=options["activate"],
                )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        state = "active" if version.is_active else "inactive (activate it with activate_model_version)"
        self.stdout.write(f"Registered {version} ({state}), sha256 {version.artifact_sha256}.")

    @staticmethod
    def _model(options: dict):
        if not options["create_model"]:
            if options["classes"] is not None:
                raise CommandError("--classes is only used with --create-model.")
            return model_get(slug=options["slug"])
        if not options["classes"]:
            raise CommandError("--create-model needs --classes, e.g. --classes 0,1,2,3,4,5,6,7,8,9.")
        return model_create(
            slug=options["slug"],
            description=options["description"],
            class_labels=options["classes"].split(","),
            input_shape=[options["input_features"]],
            input_min=options["input_min"],
            input_max=options["input_max"],
        )
