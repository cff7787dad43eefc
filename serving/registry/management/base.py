"""Shared by the registry commands."""

from django.core.management.base import BaseCommand, CommandParser, OutputWrapper

from serving.ml.artifacts import ArtifactError
from serving.registry.models import MLModel
from serving.registry.selectors import model_watermark_calibrations


class VersionOptionCommand(BaseCommand):
    """A command with its own `--version` (a model version). Django's commands all define `--version` (print
    Django's version); "resolve" lets the command's definition replace it instead of failing on the clash."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)


def print_calibrations(stdout: OutputWrapper, model: MLModel) -> None:
    """The watermark's figures per tier for the model (`model_watermark_calibrations`), and its warnings."""
    try:
        tiers = model_watermark_calibrations(model=model)
    except ArtifactError as exc:
        stdout.write(f"The watermark's figures could not be computed: {exc}")
        return
    for tier in tiers:
        figures = tier.calibration
        heldout = f", {figures.heldout_share:.2%} of held-out inputs" if figures.heldout_share is not None else ""
        stdout.write(
            f"  {tier.tier_name}: watermark on {figures.reference_share:.2%} of the reference inputs{heldout} "
            f"(at most {figures.fraction:.1%}); {figures.threshold:.2%} of regions marked."
        )
        if tier.warning:
            stdout.write(f"  WARNING ({tier.tier_name}): {tier.warning}")
