"""`manage.py verify_watermark (--csv FILE | --url URL --api-key KEY [--from-organization ID]) --model SLUG [--json]`:
is a suspect model a copy trained on our watermarked answers? Works for any registered model.

Two ways to get the suspect's answers:

- `--csv FILE`: answers collected elsewhere. One input per line, its values in the columns the model's schema
  names (`GET /v1/models` lists them: the features' names, or `pixel_<row>_<column>[_<channel>]` for an image),
  and a `label` column with the suspect's answer. With a header line the columns may come in any order (or be
  unnamed: the n non-label columns in schema order); without one, the n values come first in schema order and the
  label last. Labels are compared as text with our class labels; any other answer counts as "not our watermark
  label".
- `--url URL --api-key KEY`: query a live API compatible with ours (`POST {URL}/v1/models/{model}/predict` with
  `{"inputs": [...]}`, batches of at most `--batch-size`, `Authorization: Bearer KEY`), reading
  `predictions[i].label`. We send `--probe-count` inputs in watermark regions
  (`serving.watermark_verification.watermark_probe_inputs`): variations of `--inputs FILE` (a CSV of inputs as
  above, e.g. the
  inputs the suspect's key sent us, or the public data set a thief would start from) when given, or of the inputs
  `--from-organization ID` was answered (its query log: the organization suspected of making the copy), else of
  the model's own reference data. A copy only shows our watermark where it learned our answers, so the inputs a
  thief asked make the strongest probes: a boundary prober's copy, which learned from interpolations between
  natural inputs, is proven from its own inputs where probes of natural inputs miss it.

Our own labels come from the active model of `--variant` (default `full`); the regions from the model's reference
data and `settings.WATERMARK_SECRET`; `--fraction` must be the watermark fraction the suspect's tier was served
with. The statistics are `serving.watermark_verification.verify_watermark`'s. Exit code 0 whatever the verdict;
errors exit 1 with CommandError's message.
"""

from __future__ import annotations

import csv
import io
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from serving.input_schema import InputSchema
from serving.registry.datafiles import DataFileError, csv_rows
from serving.watermark import DEFAULT_ALPHA, DEFAULT_WATERMARK_FRACTION, RegionWatermark
from serving.watermark_verification import WatermarkVerification, verify_watermark, watermark_probe_inputs

MAX_BATCH = 100


@dataclass(frozen=True)
class ModelUnderTest:
    """What the verification needs of our model: its classes, schema, our labels, its regions and natural inputs."""

    slug: str
    class_labels: list[str]
    schema: InputSchema
    clean_labels: Callable[[np.ndarray], np.ndarray]  # canonical rows -> our top-1 class indices
    watermark: RegionWatermark
    reference: np.ndarray  # canonical rows


def load_model_under_test(*, model_slug: str | None, variant: str, secret: bytes) -> ModelUnderTest:
    """Our model from the registry: the active version of `variant` (verified artifact) and the model's regions
    under `secret`. Without a slug, the only registered model. Raises CommandError when there is no such model or
    version, or its files are missing or altered (never verify against another model)."""
    from core.errors import NotFoundError
    from serving.ml.artifacts import ArtifactError
    from serving.registry.models import MLModel
    from serving.registry.selectors import (
        active_version,
        model_get,
        model_reference_codes,
        model_schema,
        model_watermark,
        version_classifier,
    )

    try:
        if model_slug is None:
            slugs = list(MLModel.objects.order_by("slug").values_list("slug", flat=True)[:2])
            if len(slugs) != 1:
                raise CommandError(f"Name the model with --model ({', '.join(slugs) or 'none is registered'}).")
            model_slug = slugs[0]
        model = model_get(slug=model_slug)
    except NotFoundError as exc:
        raise CommandError(exc.message) from exc
    version = active_version(model_slug=model.slug, variant=variant)
    if version is None:
        raise CommandError(f"No active {variant} version of model '{model.slug}'.")
    try:
        classifier = version_classifier(version=version)
        reference = model_reference_codes(model=model)
    except ArtifactError as exc:
        raise CommandError(f"Cannot load {version}: {exc}") from exc
    schema = model_schema(model=model)

    def clean_labels(rows: np.ndarray) -> np.ndarray:
        return classifier.logits(schema.values(rows)).argmax(axis=1)

    return ModelUnderTest(
        slug=model.slug,
        class_labels=list(model.class_labels),
        schema=schema,
        clean_labels=clean_labels,
        watermark=model_watermark(model=model, reference=reference, secret=secret),
        reference=reference,
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from exc


def read_labelled_csv(path: Path, schema: InputSchema) -> tuple[np.ndarray, list[str]]:
    """Canonical inputs and the suspect's labels (as text) from a CSV file (format in the module docstring)."""
    if path.suffix.lower() != ".csv":
        raise CommandError(f"--csv takes a .csv file, got {path.name}.")
    try:
        values, labels, first_line = csv_rows(_read(path), schema, f"CSV {path}", label=True)
    except DataFileError as exc:
        raise CommandError(str(exc)) from exc
    _check_values(values, schema, path, first_line)
    return schema.codes(values), labels or []


def _check_values(values: np.ndarray, schema: InputSchema, path: Path, first_line: int) -> None:
    if not np.isfinite(values).all():
        row, column = (int(i) for i in np.argwhere(~np.isfinite(values))[0])
        raise CommandError(f"{path}, line {row + first_line}: {schema.value_label(column)} is not a finite number.")
    outside = schema.out_of_bounds(values)
    if outside.any():
        row, column = (int(i) for i in np.argwhere(outside)[0])
        raise CommandError(
            f"{path}, line {row + first_line}: {schema.value_label(column)} is {values[row, column]:g}, outside "
            f"{schema.value_range_text(column)}."
        )


def read_input_csv(path: Path, schema: InputSchema) -> np.ndarray:
    """Canonical inputs from a CSV of inputs: the model's columns by name when a header names them all, else the
    first n non-label columns; any other column (a label, an id) is ignored."""
    try:
        text = _read(path).decode("utf-8-sig")
        lines = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CommandError(f"{path} is not a UTF-8 CSV file: {exc}") from exc
    n = schema.n_features
    if not lines:
        raise CommandError(f"{path} holds no inputs.")
    header = None if all(_is_number(cell) for cell in lines[0][:n]) else [cell.strip() for cell in lines[0]]
    if header is None:
        columns = list(range(n))
    elif all(name in header for name in schema.feature_names):
        columns = [header.index(name) for name in schema.feature_names]
    else:
        columns = [i for i, name in enumerate(header) if name.lower() != "label"][:n]
    body = lines[1:] if header is not None else lines
    if not body or len(columns) != n:
        raise CommandError(f"{path}: every row needs the model's {n} input columns.")
    try:
        values = np.array([[float(row[i]) for i in columns] for row in body])
    except (ValueError, IndexError) as exc:
        raise CommandError(f"{path}: every row needs the model's {n} input columns, as numbers.") from exc
    _check_values(values, schema, path, 2 if header is not None else 1)
    return schema.codes(values)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def query_suspect(
    rows: np.ndarray, *, url: str, api_key: str, model_slug: str, batch_size: int, timeout: float
) -> list[str]:
    """POST the rows (values) to the suspect's predict endpoint in batches; its labels, one per row, in order."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CommandError(f"--url must be an http(s) address, got {url!r}.")
    endpoint = f"{url.rstrip('/')}/v1/models/{urllib.parse.quote(model_slug, safe='')}/predict"
    labels: list[str] = []
    for start in range(0, rows.shape[0], batch_size):
        batch = rows[start : start + batch_size]
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked above: http or https only)
            endpoint,
            data=json.dumps({"inputs": batch.tolist()}).encode(),
            headers={
                "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked: http or https only)  # nosec B310
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read(500).decode("utf-8", "replace")
            raise CommandError(f"{endpoint} answered HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise CommandError(f"Cannot reach {endpoint}: {getattr(exc, 'reason', exc)}") from exc
        except ValueError as exc:
            raise CommandError(f"{endpoint} did not answer JSON.") from exc
        try:
            predictions = payload["predictions"]
            answered = [str(item["label"]) for item in predictions]
        except (KeyError, TypeError) as exc:
            raise CommandError(f"{endpoint} answered without predictions[i].label.") from exc
        if len(answered) != batch.shape[0]:
            raise CommandError(f"{endpoint} answered {len(answered)} predictions for {batch.shape[0]} inputs.")
        labels.extend(answered)
    return labels


def label_indices(labels: Sequence[str], class_labels: Sequence[str]) -> np.ndarray:
    """Our class index of each suspect label, or -1 for an answer that is none of our classes."""
    position = {label: index for index, label in enumerate(class_labels)}
    return np.array([position.get(label, -1) for label in labels], dtype=np.int64)


def format_summary(result: WatermarkVerification, *, model_slug: str, variant: str, source: str) -> str:
    """The human-readable report."""
    if result.regions == 0:
        verdict = "NO EVIDENCE: none of these inputs lies in a watermark region; send more (or other) inputs."
    elif result.verdict:
        verdict = (
            f"WATERMARK DETECTED (p < {result.alpha:g}): the suspect answers our watermark regions' classes far "
            "more often than a model that never saw our answers could."
        )
    else:
        verdict = f"not detected (p >= {result.alpha:g}): no evidence that the suspect learned our watermark."
    control = (
        f"{result.control_matches} of {result.control_inputs} ({result.control_rate:.4f})"
        if result.control_rate is not None
        else "none (every input lies in a watermark region)"
    )
    return "\n".join(
        [
            f"Watermark verification of {source} against model '{model_slug}' ({variant})",
            f"  distinct inputs:          {result.inputs}",
            f"  watermark regions:        {result.regions}",
            f"  inputs in them:           {result.watermark_inputs}",
            f"  matches (region's class): {result.matches}",
            f"  expected by chance:       {result.expected_matches:.1f}",
            f"  p-value (exact, regions): {result.p_value:.3g}",
            f"  control matches:          {control}",
            f"  verdict:                  {verdict}",
        ]
    )


# The latest logged inputs of a suspect organization the probes start from (enough for any probe count).
MAX_LOGGED_INPUTS = 50_000


def probe_base(options: dict, ours: ModelUnderTest) -> np.ndarray:
    """The canonical inputs the probes start from: `--inputs`, `--from-organization`'s logged inputs, or the model's
    reference data. Raises CommandError when the organization sent none the log still holds."""
    if options["inputs"] is not None:
        return read_input_csv(options["inputs"], ours.schema)
    if options["from_organization"] is None:
        return ours.reference
    from serving.predictions.selectors import organization_logged_inputs

    logged = organization_logged_inputs(
        organization_id=options["from_organization"], model_slug=ours.slug, schema=ours.schema, limit=MAX_LOGGED_INPUTS
    )
    if logged.shape[0] == 0:
        raise CommandError(
            f"Organization {options['from_organization']} has no logged inputs of '{ours.slug}' (none sent, or"
            " pruned by the retention job): probe from --inputs or the reference data instead."
        )
    return logged


class Command(BaseCommand):
    help = "Test whether a suspect model (answers in a CSV, or a live API) was trained on our watermarked answers."

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--csv", type=Path, help="The model's input columns + a 'label' column of answers.")
        source.add_argument("--url", help="Base address of a suspect API compatible with ours.")
        parser.add_argument(
            "--api-key",
            default=os.environ.get("SUSPECT_API_KEY"),
            help="Bearer key for --url (default: $SUSPECT_API_KEY, which keeps it out of the process list).",
        )
        parser.add_argument("--model", default=None, help="Our model's slug (and the suspect's, for --url).")
        parser.add_argument("--variant", default="full", choices=["full", "defended"], help="Our labels' model.")
        parser.add_argument("--probe-count", type=int, default=100, help="Watermark probes to send with --url.")
        probes_from = parser.add_mutually_exclusive_group()
        probes_from.add_argument("--inputs", type=Path, help="With --url: CSV of real inputs the probes start from.")
        probes_from.add_argument(
            "--from-organization",
            type=int,
            metavar="ID",
            help="With --url: the probes start from the inputs this organization sent us (its query log).",
        )
        parser.add_argument("--batch-size", type=int, default=MAX_BATCH, help="Inputs per request with --url.")
        parser.add_argument("--timeout", type=float, default=30.0, help="Seconds per request with --url.")
        parser.add_argument("--seed", type=int, default=0, help="Seed of the probe generator.")
        parser.add_argument(
            "--fraction",
            type=float,
            default=DEFAULT_WATERMARK_FRACTION,
            help="Watermark fraction the suspect was served with (the largest, if several tiers).",
        )
        parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="Significance level of the verdict.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object instead of the summary.")

    def handle(self, *args, **options) -> None:
        secret = getattr(settings, "WATERMARK_SECRET", None)
        if not secret:
            raise CommandError("settings.WATERMARK_SECRET is not set: the watermark cannot be checked without it.")
        fraction, alpha = options["fraction"], options["alpha"]
        if not 0.0 < fraction < 1.0:
            raise CommandError("--fraction must be between 0 and 1.")
        if not 0.0 < alpha < 1.0:
            raise CommandError("--alpha must be between 0 and 1.")
        variant = options["variant"]
        if options["url"] is not None:
            if not options["api_key"]:
                raise CommandError("--url needs --api-key or SUSPECT_API_KEY.")
            if options["probe_count"] < 1:
                raise CommandError("--probe-count must be at least 1.")
            if not 1 <= options["batch_size"] <= MAX_BATCH:
                raise CommandError(f"--batch-size must be 1..{MAX_BATCH}.")
        ours = load_model_under_test(
            model_slug=options["model"], variant=variant, secret=secret.encode() if isinstance(secret, str) else secret
        )
        if options["csv"] is not None:
            rows, suspect_labels = read_labelled_csv(options["csv"], ours.schema)
            source = str(options["csv"])
        else:
            base = probe_base(options, ours)
            try:
                rows = watermark_probe_inputs(
                    options["probe_count"],
                    watermark=ours.watermark,
                    base_inputs=base,
                    fraction=fraction,
                    seed=options["seed"],
                )
            except RuntimeError as exc:
                raise CommandError(f"Could not make enough probes: {exc}") from exc
            suspect_labels = query_suspect(
                ours.schema.values(rows),
                url=options["url"],
                api_key=options["api_key"],
                model_slug=ours.slug,
                batch_size=options["batch_size"],
                timeout=options["timeout"],
            )
            source = options["url"]

        result = verify_watermark(
            rows,
            label_indices(suspect_labels, ours.class_labels),
            clean_label_fn=ours.clean_labels,
            n_classes=len(ours.class_labels),
            watermark=ours.watermark,
            fraction=fraction,
            alpha=alpha,
        )
        if options["json"]:
            payload = {"model": ours.slug, "variant": variant, "source": source, "fraction": fraction}
            payload.update(result.to_dict())
            self.stdout.write(json.dumps(payload, sort_keys=True))
        else:
            self.stdout.write(format_summary(result, model_slug=ours.slug, variant=variant, source=source))
