"""Sign-in by email address: the canonical mailbox, so any spelling of it finds the account."""

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from accounts.emails import canonical_email
from accounts.models import User


class EmailBackend(ModelBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        email: str | None = None,
        password: str | None = None,
        username: str | None = None,
        **kwargs,
    ) -> User | None:
        address = email or username
        if not address or password is None:
            return None
        try:
            user = User.objects.get(email_canonical=canonical_email(address))
        except (User.DoesNotExist, ValueError):
            # Hash anyway so an unknown address takes as long as a wrong password.
            User().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
