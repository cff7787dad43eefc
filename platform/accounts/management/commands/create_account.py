"""`manage.py create_account EMAIL --tier T [--organization NAME] [--accept-terms]`: onboard a customer.

Prints the new API key alone on the last line of stdout (scripts read it with `tail -n 1`)."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.errors import SignupError
from accounts.services import account_create
from tiers.models import Tier


class Command(BaseCommand):
    help = "Create a verified user and organization on a tier, and print its first API key on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--tier", required=True, choices=["free", "pro", "enterprise"])
        parser.add_argument("--organization", default=None, help="Organization name (default: the email).")
        parser.add_argument(
            "--accept-terms",
            action="store_true",
            help="Record acceptance of the current Terms (signed contract).",
        )

    def handle(self, *args, email: str, tier: str, organization: str | None, accept_terms: bool, **options) -> None:
        try:
            created = account_create(
                email=email, tier_code=tier, organization_name=organization, accept_terms=accept_terms
            )
        except SignupError as exc:
            raise CommandError(exc.message) from exc
        except ValueError as exc:
            raise CommandError(f"Not a valid email address: {email}") from exc
        except Tier.DoesNotExist as exc:
            raise CommandError(f"No tier '{tier}': run migrations first.") from exc
        org = created.organization
        self.stderr.write(f"Created {created.user.email} in organization '{org.name}' (#{org.pk}) on tier {tier}.")
        if not accept_terms:
            self.stderr.write("The Terms are not accepted yet: API calls answer 403 until a member accepts them.")
        self.stdout.write(created.raw_key)
