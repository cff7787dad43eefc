"""`manage.py train_demo_model [--dp ...] [--if-missing] [--version V]`: train and register the demo `digits` model.

Trains the full and the defended variant (see `serving.ml.demo`), writes their artifacts into the artifact
directory and makes them the active versions. `--if-missing` (run on every start) does nothing when every variant
already has an active version, and otherwise registers only the variants that lack one.
"""

import math
import tempfile
import time
from pathlib import Path

from django.core.management.base import CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from core.errors import ApplicationError
from serving.ml.artifacts import save_artifact
from serving.ml.demo import CLASS_LABELS, DemoModels, DPSettings, TrainedVariant, train_demo_models
from serving.registry.management.base import VersionOptionCommand
from serving.registry.models import MLModel
from serving.registry.selectors import active_version
from serving.registry.services import DIGITS_SLUG, model_get_or_create_digits, version_register
from tiers.models import ModelVariant


def _missing_variants() -> list[str]:
    return [v for v in ModelVariant.values if active_version(model_slug=DIGITS_SLUG, variant=v) is None]


def _input_profile(trained: DemoModels) -> dict:
    """The natural digits' distribution, for abuse detection: fitted on the training rows, with the share of
    low-confidence answers that honest users see on natural digits (the held-out rows, answered by the defended
    model through the free tier's output defenses, the noisiest any public tier serves)."""
    from abuse.simulation import reference_profile  # the abuse app owns the profile's definition

    return reference_profile(trained.defended.weights, tier="free").to_dict()


class Command(VersionOptionCommand):
    help = "Train the demo digits models (full and defended) reproducibly and register them as the active versions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dp", action="store_true", help="Train the defended variant with DP-SGD.")
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
        if options["if_missing"] and not _missing_variants():
            self.stderr.write("The digits model already has active versions: nothing to do.")
            return
        started = time.perf_counter()
        trained = train_demo_models(dp=dp)
        version = options["version"] or timezone.now().strftime("%Y.%m.%d-%H%M%S")
        profile = _input_profile(trained)
        with tempfile.TemporaryDirectory(prefix="moat-train-") as scratch:
            registered = self._register(
                trained.full, trained.defended, version, Path(scratch), options["if_missing"], profile
            )
        seconds = time.perf_counter() - started
        if not registered:
            self.stderr.write("Another process registered the digits model meanwhile: nothing to do.")
            return
        for variant in (trained.full, trained.defended):
            if variant.variant in registered:
                self.stdout.write(self._summary(variant, registered[variant.variant]))
        self.stdout.write(f"trained in {trained.seconds:.1f}s, {seconds:.1f}s in all")

    def _dp_settings(self, options: dict) -> DPSettings | None:
        if not options["dp"]:
            return None
        noise, clip, delta = options["dp_noise_multiplier"], options["dp_clip"], options["dp_delta"]
        # Zero noise gives an infinite epsilon, which is not a DP guarantee (nor storable as JSON).
        if not (math.isfinite(noise) and noise > 0 and math.isfinite(clip) and clip > 0 and 0 < delta < 1):
            raise CommandError("Need --dp-noise-multiplier > 0, --dp-clip > 0 and 0 < --dp-delta < 1.")
        return DPSettings(noise_multiplier=noise, clip_norm=clip, delta=delta)

    @transaction.atomic
    def _register(
        self,
        full: TrainedVariant,
        defended: TrainedVariant,
        version: str,
        scratch: Path,
        if_missing: bool,
        input_profile: dict,
    ) -> dict[str, str]:
        """Register the variants in one transaction, so both switch together. Returns {variant: version}."""
        model = model_get_or_create_digits()
        # Re-checked under the model's lock: two processes starting at once register the demo model only once.
        MLModel.objects.select_for_update().get(pk=model.pk)
        wanted = _missing_variants() if if_missing else list(ModelVariant.values)
        registered = {}
        for trained in (full, defended):
            if trained.variant not in wanted:
                continue
            name = f"{version}-dp" if trained.dp_epsilon is not None else version
            path = scratch / f"{trained.variant}.npz"
            save_artifact(path, trained.weights, class_labels=CLASS_LABELS)
            try:
                version_register(
                    model=model,
                    variant=trained.variant,
                    version=name,
                    artifact_file=path,
                    metrics=trained.metrics,
                    provenance=trained.provenance,
                    dp_epsilon=trained.dp_epsilon,
                    dp_delta=trained.dp_delta,
                    input_profile=input_profile,
                    activate=True,
                )
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
            registered[trained.variant] = name
        return registered

    @staticmethod
    def _summary(trained: TrainedVariant, version: str) -> str:
        metrics = trained.metrics
        line = (
            f"digits {trained.variant} {version}: held-out accuracy {metrics['holdout_accuracy']:.4f} "
            f"on {metrics['holdout_rows']} rows, train {metrics['train_accuracy']:.4f}, "
            f"agreement with full {metrics['agreement_with_full']:.4f}, hidden {metrics['hidden_layers']}"
        )
        if trained.dp_epsilon is not None:
            line += f", DP epsilon {trained.dp_epsilon:.2f} at delta {trained.dp_delta:g}"
        return line
