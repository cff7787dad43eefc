"""`manage.py register_model SLUG --onnx FILE --variant {full,defended} --version V [--activate] ...`

Register an ONNX classifier as a version of a model, creating the model from its description on first use:

    python manage.py register_model my-model --onnx model.onnx --schema schema.json --classes cat,dog \\
        --reference-data natural.npy [--heldout heldout.csv] --variant full --version 2026.12.01 --activate

The graph is checked against the model before anything is recorded (`serving.registry.graphs`): its input, layout
and dtype against the schema, its output against the classes, and the reference data run through it. A refusal is
one sentence on stderr and exit status 1, never a traceback. A model with only a full version is served to the
public tiers through their output defenses; `distill_defended_model SLUG` makes it a defended one.
"""

import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.errors import ApplicationError
from serving.inference import LAYOUTS, OUTPUT_KINDS
from serving.registry.management.base import VersionOptionCommand, print_calibrations
from serving.registry.workflows import model_register_version
from tiers.models import ModelVariant


def _read_bytes(path: str | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(f"Cannot read the {what} {path}: {exc.strerror or exc}.") from exc


def _json_file(path: str | None, what: str, *, kind: type = dict) -> Any:
    data = _read_bytes(path, what)
    if data is None:
        return None
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CommandError(f"The {what} {path} is not JSON: {exc}") from exc
    if not isinstance(value, kind):
        raise CommandError(f"The {what} {path} must hold a JSON {'object' if kind is dict else 'list'}.")
    return value


def _classes(value: str | None) -> list[str] | None:
    if value is None:
        return None
    if value.endswith(".json"):
        return [str(label) for label in _json_file(value, "classes file", kind=list)]
    return value.split(",")


class Command(VersionOptionCommand):
    help = "Check an ONNX classifier against its model's schema and register it as a version (creating the model)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The model's id in the API, e.g. churn or digits.")
        parser.add_argument("--onnx", required=True, help="The ONNX file (a graph with one float input).")
        parser.add_argument("--variant", required=True, choices=ModelVariant.values)
        parser.add_argument("--version", required=True, help="Unique per model and variant, e.g. 2026.12.01.")
        parser.add_argument("--activate", action="store_true", help="Make it the active version of its variant.")
        model = parser.add_argument_group("describing a new model (checked against it when the model exists)")
        model.add_argument("--schema", help="JSON file of the input schema (README, 'Bring your own model').")
        model.add_argument("--classes", help="Class labels in the order of the graph's outputs: a,b,c or FILE.json.")
        model.add_argument("--reference-data", help="Natural inputs: .npy (rows x features) or .csv.")
        model.add_argument("--heldout", help="Labelled held-out inputs: .npz (inputs, labels) or .csv with 'label'.")
        model.add_argument("--description", default="", help="One line shown in the API's model list.")
        graph = parser.add_argument_group("binding to the graph (found when there is one choice)")
        graph.add_argument("--input-name", help="The graph input Moat feeds (default: its only input).")
        graph.add_argument("--input-layout", choices=LAYOUTS, help="Image layout, when the shape allows several.")
        graph.add_argument("--output-name", help="The output holding the class scores (default: its only float one).")
        graph.add_argument("--output-kind", choices=OUTPUT_KINDS, help="Default: found from the reference answers.")
        graph.add_argument("--embedding-output", help="The penultimate layer's output, for abuse detection.")
        records = parser.add_argument_group("records")
        records.add_argument("--metrics-json", help="File with a JSON object of metrics to record.")
        records.add_argument("--provenance-json", help="File with a JSON object describing the training data.")

    def handle(self, *args, **options) -> None:
        onnx_bytes = _read_bytes(options["onnx"], "ONNX file")
        reference = options["reference_data"]
        heldout = options["heldout"]
        try:
            version = model_register_version(
                slug=options["slug"],
                variant=options["variant"],
                version=options["version"],
                onnx_bytes=onnx_bytes,
                activate=options["activate"],
                description=options["description"],
                class_labels=_classes(options["classes"]),
                input_schema=_json_file(options["schema"], "schema file"),
                reference_data=_read_bytes(reference, "reference data"),
                reference_name=reference or "",
                heldout_data=_read_bytes(heldout, "held-out set"),
                heldout_name=heldout or "",
                input_name=options["input_name"],
                input_layout=options["input_layout"],
                output_name=options["output_name"],
                output_kind=options["output_kind"],
                embedding_output=options["embedding_output"],
                metrics=_json_file(options["metrics_json"], "metrics file") or {},
                provenance=_json_file(options["provenance_json"], "provenance file") or {},
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        state = "active" if version.is_active else "inactive (activate it with activate_model_version)"
        accuracy = version.metrics.get("holdout_accuracy")
        self.stdout.write(
            f"Registered {version} ({state}): input '{version.input_name}' ({version.input_layout}), output "
            f"'{version.output_name}' ({version.output_kind})"
            + (f", held-out accuracy {accuracy:.4f}" if accuracy is not None else "")
            + f", sha256 {version.artifact_sha256}."
        )
        if version.is_active:
            print_calibrations(self.stdout, version.model)
