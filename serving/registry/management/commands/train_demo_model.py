"""`manage.py train_demo_model [--dp ...] [--if-missing] [--version V]`: train and register the demo models.

Registers `digits` (the full and defended numpy MLPs, exported to ONNX; see `serving.ml.digits_models`) and
`breast-cancer` (a scikit-learn logistic regression converted with skl2onnx, and its distilled defended variant;
see `serving.ml.breast_cancer`), each version active, through the same services an operator's models go through.
`--if-missing` (run on every start) does nothing when every demo variant already has an active version, and
otherwise registers only the variants that lack one.
"""

import math
import time

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from core.errors import ApplicationError
from serving.ml.digits_models import DPSettings
from serving.registry.demo_models import DEMO_SLUGS, missing_variants, register_demo_models
from serving.registry.management.base import VersionOptionCommand


class Command(VersionOptionCommand):
    help = "Train the demo models (digits and breast-cancer, full and defended) and register them as active versions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dp", action="store_true", help="Train the digits' defended variant with DP-SGD.")
        parser.add_argument("--dp-noise-multiplier", type=float, default=DPSettings.noise_multiplier)
        parser.add_argument("--dp-clip", type=float, default=DPSettings.clip_norm, help="Per-example L2 clip norm.")
        parser.add_argument("--dp-delta", type=float, default=DPSettings.delta)
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="Only register variants that have no active version (does nothing when all have one).",
        )
        parser.add_argument("--version", default=None, help="Version name (default: the UTC time, YYYY.MM.DD-HHMMSS).")

    def handle(self, *args, **options) -> None:
        dp = self._dp_settings(options)
        if options["if_missing"] and not any(missing_variants(slug) for slug in DEMO_SLUGS):
            self.stderr.write("The demo models already have active versions: nothing to do.")
            return
        started = time.perf_counter()
        version = options["version"] or timezone.now().strftime("%Y.%m.%d-%H%M%S")
        try:
            registered = register_demo_models(version=version, only_missing=options["if_missing"], dp=dp)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if not registered:
            self.stderr.write("Another process registered the demo models meanwhile: nothing to do.")
            return
        for demo in registered:
            self.stdout.write(self._summary(demo))
        self.stdout.write(f"{time.perf_counter() - started:.1f}s in all")

    def _dp_settings(self, options: dict) -> DPSettings | None:
        if not options["dp"]:
            return None
        noise, clip, delta = options["dp_noise_multiplier"], options["dp_clip"], options["dp_delta"]
        # Zero noise gives an infinite epsilon, which is not a DP guarantee (nor storable as JSON).
        if not (math.isfinite(noise) and noise > 0 and math.isfinite(clip) and clip > 0 and 0 < delta < 1):
            raise CommandError("Need --dp-noise-multiplier > 0, --dp-clip > 0 and 0 < --dp-delta < 1.")
        return DPSettings(noise_multiplier=noise, clip_norm=clip, delta=delta)

    @staticmethod
    def _summary(demo) -> str:
        metrics = demo.metrics
        parts = [f"{demo.slug} {demo.variant} {demo.version}:"]
        if "holdout_accuracy" in metrics:
            parts.append(f"held-out accuracy {metrics['holdout_accuracy']:.4f} on {metrics['holdout_rows']} rows")
        if "agreement_with_full" in metrics and demo.variant == "defended":
            parts.append(f"agreement with full {metrics['agreement_with_full']:.4f}")
        if "hidden_layers" in metrics:
            parts.append(f"hidden {metrics['hidden_layers']}")
        if demo.dp_epsilon is not None:
            parts.append(f"DP epsilon {demo.dp_epsilon:.2f} at delta {demo.dp_delta:g}")
        return " ".join(parts[:1]) + " " + ", ".join(parts[1:])
