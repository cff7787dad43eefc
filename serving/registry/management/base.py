"""Shared by the registry commands."""

from django.core.management.base import BaseCommand, CommandParser


class VersionOptionCommand(BaseCommand):
    """A command with its own `--version` (a model version). Django's commands all define `--version` (print
    Django's version); "resolve" lets the command's definition replace it instead of failing on the clash."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)
