"""`manage.py verify_watermark (--csv FILE | --url URL --api-key KEY) [--model digits] [--probe-count N] [--json]`:
is a suspect model a copy trained on our watermarked answers?

Two ways to get the suspect's answers:

- `--csv FILE`: answers collected elsewhere. One input per line: 64 pixel columns (intensities 0..16, row by row
  of the 8x8 image) and a `label` column with the suspect's answer. A header row is optional: when the first line
  is not all numbers it is a header, and the label is the column named `label` (the 64 others, in order, are the
  pixels); without a header the label is the 65th (last) column. Labels are compared as text with our class
  labels ("0".."9"); any other answer counts as "not our watermark label".
- `--url URL --api-key KEY`: query a live API compatible with ours (`POST {URL}/v1/models/{model}/predict` with
  `{"inputs": [...]}`, batches of at most `--batch-size`, `Authorization: Bearer KEY`), reading
  `predictions[i].label`. We send `--probe-count` inputs in watermark regions
  (`serving.watermark.watermark_probe_inputs`): variations of `--inputs FILE` (a CSV of 64 pixel columns, e.g. the
  inputs the suspect's key sent us, or the public data set a thief would start from) when given, else of built-in
  digit glyphs. A copy only shows our watermark where it learned our answers, so real inputs make far stronger
  probes than glyphs.

Our own labels come from the active model of `--variant` (default `full`); the secret from
`settings.WATERMARK_SECRET`; `--fraction` must be the watermark fraction the suspect's tier was served with. The
statistics are `serving.watermark.verify_watermark`'s. Exit code 0 whatever the verdict; errors exit 1 with
CommandError's message.
"""

from __future__ import annotations

import csv
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from serving.defenses import N_FEATURES, canonicalize
from serving.watermark import (
    DEFAULT_ALPHA,
    DEFAULT_WATERMARK_FRACTION,
    WatermarkVerification,
    verify_watermark,
    watermark_probe_inputs,
)

CleanLabeller = Callable[[np.ndarray], np.ndarray]
MAX_BATCH = 100


def load_clean_labeller(*, model_slug: str, variant: str) -> tuple[list[str], CleanLabeller]:
    """Our model's class labels and a function canonical rows -> top-1 class indices, from the registry.

    Imported lazily: the registry and the artifact loader are only needed here, and this keeps the module
    importable (and its pure parts testable) on their own. Raises CommandError when no version is active.
    """
    from core.errors import NotFoundError
    from serving.ml.artifacts import ArtifactError, load_artifact
    from serving.ml.mlp import forward_logits
    from serving.registry.selectors import active_version, version_artifact_file

    version = active_version(model_slug=model_slug, variant=variant)
    if version is None:
        raise CommandError(f"No active {variant} version of model '{model_slug}'.")
    try:
        weights = load_artifact(version_artifact_file(version=version), expected_sha256=version.artifact_sha256)
    except (ArtifactError, NotFoundError) as exc:  # missing or altered: never verify against another model
        raise CommandError(f"Cannot load the artifact of {version}: {exc}") from exc

    def clean_labels(rows: np.ndarray) -> np.ndarray:
        return forward_logits(weights, rows.astype(np.float64)).argmax(axis=1)

    return list(version.model.class_labels), clean_labels


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_labelled_csv(path: Path) -> tuple[np.ndarray, list[str]]:
    """Canonical inputs `(n, 64)` and the suspect's labels from a CSV file (format in the module docstring)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            lines = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CommandError(f"{path} is not a UTF-8 CSV file: {exc}") from exc
    if not lines:
        raise CommandError(f"{path} holds no rows.")
    first_line_number = 1
    pixel_columns, label_column = list(range(N_FEATURES)), N_FEATURES
    if not all(_is_number(cell) for cell in lines[0]):
        header = [cell.strip().lower() for cell in lines[0]]
        if "label" not in header or len(header) != N_FEATURES + 1:
            raise CommandError(f"{path}: the header must name {N_FEATURES} pixel columns and one 'label' column.")
        label_column = header.index("label")
        pixel_columns = [i for i in range(len(header)) if i != label_column]
        lines, first_line_number = lines[1:], 2
    pixels, labels = [], []
    for number, row in enumerate(lines, start=first_line_number):
        if len(row) != N_FEATURES + 1:
            raise CommandError(f"{path}, line {number}: expected {N_FEATURES + 1} columns, got {len(row)}.")
        try:
            pixels.append([float(row[i]) for i in pixel_columns])
        except ValueError as exc:
            raise CommandError(f"{path}, line {number}: a pixel is not a number.") from exc
        labels.append(row[label_column].strip())
    if not labels:
        raise CommandError(f"{path} holds a header but no rows.")
    try:
        return canonicalize(np.array(pixels)), labels
    except ValueError as exc:
        raise CommandError(f"{path}: {exc}") from exc


def read_input_csv(path: Path) -> np.ndarray:
    """Canonical inputs from a CSV of 64 pixel columns; a header line and a 65th (label) column are ignored."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            lines = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CommandError(f"{path} is not a UTF-8 CSV file: {exc}") from exc
    if lines and not all(_is_number(cell) for cell in lines[0][:N_FEATURES]):
        lines = lines[1:]
    if not lines:
        raise CommandError(f"{path} holds no inputs.")
    try:
        return canonicalize(np.array([[float(cell) for cell in row[:N_FEATURES]] for row in lines]))
    except ValueError as exc:
        raise CommandError(f"{path}: every row needs {N_FEATURES} numeric pixel columns ({exc}).") from exc


def query_suspect(
    rows: np.ndarray, *, url: str, api_key: str, model_slug: str, batch_size: int, timeout: float
) -> list[str]:
    """POST the rows to the suspect's predict endpoint in batches and return its labels, one per row, in order."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CommandError(f"--url must be an http(s) address, got {url!r}.")
    endpoint = f"{url.rstrip('/')}/v1/models/{urllib.parse.quote(model_slug, safe='')}/predict"
    labels: list[str] = []
    for start in range(0, rows.shape[0], batch_size):
        batch = rows[start : start + batch_size]
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked above: http or https only)
            endpoint,
            data=json.dumps({"inputs": batch.astype(int).tolist()}).encode(),
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


class Command(BaseCommand):
    help = "Test whether a suspect model (answers in a CSV, or a live API) was trained on our watermarked answers."

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--csv", type=Path, help="64 pixel columns + a 'label' column of the suspect's answers.")
        source.add_argument("--url", help="Base address of a suspect API compatible with ours.")
        parser.add_argument(
            "--api-key",
            default=os.environ.get("SUSPECT_API_KEY"),
            help="Bearer key for --url (default: $SUSPECT_API_KEY, which keeps it out of the process list).",
        )
        parser.add_argument("--model", default="digits", help="Our model's slug (and the suspect's, for --url).")
        parser.add_argument("--variant", default="full", choices=["full", "defended"], help="Our labels' model.")
        parser.add_argument("--probe-count", type=int, default=100, help="Watermark probes to send with --url.")
        parser.add_argument("--inputs", type=Path, help="With --url: CSV of real inputs the probes start from.")
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
        watermark_secret = secret.encode() if isinstance(secret, str) else bytes(secret)
        fraction, alpha = options["fraction"], options["alpha"]
        if not 0.0 < fraction < 1.0:
            raise CommandError("--fraction must be between 0 and 1.")
        if not 0.0 < alpha < 1.0:
            raise CommandError("--alpha must be between 0 and 1.")
        model_slug, variant = options["model"], options["variant"]

        if options["csv"] is not None:
            rows, suspect_labels = read_labelled_csv(options["csv"])
            source = str(options["csv"])
            class_labels, clean_labels = load_clean_labeller(model_slug=model_slug, variant=variant)
        else:
            if not options["api_key"]:
                raise CommandError("--url needs --api-key or SUSPECT_API_KEY.")
            if options["probe_count"] < 1:
                raise CommandError("--probe-count must be at least 1.")
            if not 1 <= options["batch_size"] <= MAX_BATCH:
                raise CommandError(f"--batch-size must be 1..{MAX_BATCH}.")
            class_labels, clean_labels = load_clean_labeller(model_slug=model_slug, variant=variant)
            base = read_input_csv(options["inputs"]) if options["inputs"] is not None else None
            try:
                rows = watermark_probe_inputs(
                    options["probe_count"],
                    watermark_secret=watermark_secret,
                    fraction=fraction,
                    seed=options["seed"],
                    base_inputs=base,
                )
            except RuntimeError as exc:
                raise CommandError(f"Could not make enough probes: {exc}") from exc
            suspect_labels = query_suspect(
                rows,
                url=options["url"],
                api_key=options["api_key"],
                model_slug=model_slug,
                batch_size=options["batch_size"],
                timeout=options["timeout"],
            )
            source = options["url"]

        result = verify_watermark(
            rows,
            label_indices(suspect_labels, class_labels),
            clean_label_fn=clean_labels,
            n_classes=len(class_labels),
            watermark_secret=watermark_secret,
            fraction=fraction,
            alpha=alpha,
        )
        if options["json"]:
            payload = {"model": model_slug, "variant": variant, "source": source, "fraction": fraction}
            payload.update(result.to_dict())
            self.stdout.write(json.dumps(payload, sort_keys=True))
        else:
            self.stdout.write(format_summary(result, model_slug=model_slug, variant=variant, source=source))
