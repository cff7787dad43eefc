"""`manage.py ensure_staff_user`: create the first staff account once and print its credentials once."""

import secrets

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError, transaction

from accounts.models import User

_EXISTS = "A staff account exists already; its password is not shown again."


class Command(BaseCommand):
    help = "Create a staff superuser if none exists, printing its generated password (only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", default="staff@moat.local")

    def handle(self, *args, email: str, **options) -> None:
        if User.objects.filter(is_staff=True).exists():
            self.stdout.write(_EXISTS)
            return
        password = secrets.token_urlsafe(18)
        try:
            with transaction.atomic():
                User.objects.create_superuser(email=email, password=password)
        except IntegrityError as exc:
            # A concurrent run (two deploys starting at once) created the account between the check and here.
            if User.objects.filter(is_staff=True).exists():
                self.stdout.write(_EXISTS)
                return
            raise CommandError(f"{email} already has an account that is not staff; pass another --email.") from exc
        self.stdout.write(self.style.SUCCESS("Created the staff account (shown once, keep it safe):"))
        self.stdout.write(f"  email:    {email}\n  password: {password}")
