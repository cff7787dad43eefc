"""`manage.py distill_defended_model SLUG [--version V] [--activate] [--hidden N] [--epochs N] [--temperature T]`

Train a defended variant of a model from its active full version: a smaller student learns the full model's softened
probabilities over the model's reference data and schema-aware natural variants of them (`serving.ml.distill`), is
exported to ONNX and registered as a `defended` version, its agreement with the full model recorded. Until a model
has a defended version, the public tiers are served its full version through their output defenses only.
"""

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from core.errors import ApplicationError
from serving.ml.distill import DistillationConfig
from serving.registry.management.base import VersionOptionCommand, print_calibrations
from serving.registry.selectors import model_get
from serving.registry.workflows import model_distill_defended


class Command(VersionOptionCommand):
    help = "Distil a defended variant from a model's active full version and register it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--version", default=None, help="Version name (default: the UTC time, YYYY.MM.DD-HHMMSS).")
        parser.add_argument("--activate", action="store_true", help="Make it the active defended version.")
        parser.add_argument("--hidden", type=int, default=None, help="Hidden units (default: from the input width).")
        parser.add_argument("--epochs", type=int, default=DistillationConfig.epochs)
        parser.add_argument("--temperature", type=float, default=DistillationConfig.temperature)
        parser.add_argument("--seed", type=int, default=DistillationConfig.seed)

    def handle(self, *args, slug: str, **options) -> None:
        if options["hidden"] is not None and not 1 <= options["hidden"] <= 4096:
            raise CommandError("--hidden must be 1..4096.")
        if not 1 <= options["epochs"] <= 1000 or not 0.1 <= options["temperature"] <= 100:
            raise CommandError("--epochs must be 1..1000 and --temperature 0.1..100.")
        config = DistillationConfig(
            hidden=(options["hidden"],) if options["hidden"] else None,
            epochs=options["epochs"],
            temperature=options["temperature"],
            seed=options["seed"],
        )
        version = options["version"] or timezone.now().strftime("%Y.%m.%d-%H%M%S")
        try:
            registered = model_distill_defended(
                model=model_get(slug=slug), version=version, activate=options["activate"], config=config
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        metrics = registered.metrics
        agreement = metrics.get("agreement_with_full")
        self.stdout.write(
            f"Registered {registered} ({'active' if registered.is_active else 'inactive'}): hidden "
            f"{metrics['hidden_layers']}, agreement with the full model "
            + (f"{agreement:.4f} on {metrics['agreement_rows']} inputs, " if agreement is not None else "")
            + f"{metrics['agreement_with_full_on_variants']:.4f} on unseen variants, in {metrics['seconds']:.1f}s."
        )
        if registered.is_active:
            print_calibrations(self.stdout, registered.model)
