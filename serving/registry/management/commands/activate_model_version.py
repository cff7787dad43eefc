"""`manage.py activate_model_version SLUG --variant V --version X`: switch the served version without downtime.

The switch is one transaction; serving processes notice the registry generation change within seconds."""

from django.core.management.base import CommandError, CommandParser

from core.errors import ApplicationError
from serving.registry.management.base import VersionOptionCommand, print_calibrations
from serving.registry.selectors import version_get
from serving.registry.services import version_activate
from tiers.models import ModelVariant


class Command(VersionOptionCommand):
    help = "Make a registered version the active one of its model and variant."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--variant", required=True, choices=ModelVariant.values)
        parser.add_argument("--version", required=True)

    def handle(self, *args, slug: str, variant: str, version: str, **options) -> None:
        try:
            found = version_get(model_slug=slug, variant=variant, version=version)
            version_activate(version=found)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"{found} is now the active {variant} version of {slug}.")
        print_calibrations(self.stdout, found.model)
