"""`manage.py ensure_staff_user`: the first staff account, created once, its password shown once."""

import re
import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import User, UserManager

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command("ensure_staff_user", *args, stdout=out)
    return out.getvalue()


def _printed_password(output: str) -> str:
    [password] = re.findall(r"^\s*password:\s*(\S+)\s*$", output, flags=re.MULTILINE)
    return password


def test_ensure_staff_user_creates_one_verified_superuser_and_prints_its_password():
    output = _run()

    user = User.objects.get()
    assert user.email == "staff@moat.local"
    assert (user.is_staff, user.is_superuser, user.is_active) == (True, True, True)
    assert user.email_verified_at is not None
    assert "email:    staff@moat.local" in output
    password = _printed_password(output)
    assert len(password) >= 20
    assert user.check_password(password)


def test_ensure_staff_user_takes_the_address_as_an_option():
    _run("--email", "ops@corp.example")

    assert User.objects.get().email == "ops@corp.example"


def test_ensure_staff_user_a_second_time_creates_nothing_and_prints_no_password():
    first = _run()
    password = _printed_password(first)

    second = _run()

    assert User.objects.count() == 1
    assert "password" not in second.replace("its password is not shown again", "")
    assert password not in second
    assert second.strip() == "A staff account exists already; its password is not shown again."


def test_ensure_staff_user_creates_nothing_when_any_staff_account_exists():
    User.objects.create_user(email="existing-staff@example.com", password="x" * 12, is_staff=True)

    output = _run()

    assert User.objects.count() == 1
    assert output.strip() == "A staff account exists already; its password is not shown again."


def test_ensure_staff_user_generates_a_different_password_for_each_new_deployment():
    first = _printed_password(_run())
    User.objects.all().delete()

    second = _printed_password(_run())

    assert first != second


def test_ensure_staff_user_refuses_an_address_that_has_a_non_staff_account():
    User.objects.create_user(email="staff@moat.local", password="x" * 12)

    with pytest.raises(CommandError, match=r"^staff@moat.local already has an account that is not staff"):
        _run()

    assert list(User.objects.values_list("email", "is_staff")) == [("staff@moat.local", False)]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_create_one_account_and_only_the_creator_prints_a_password(monkeypatch):
    """Both runs pass the check before either creates (two deploys starting at once): the loser reports the account
    that exists instead of failing with an IntegrityError."""
    both_checked = threading.Barrier(2, timeout=10)
    original = UserManager.create_superuser

    def create_after_both_checked(self, *args, **kwargs):
        both_checked.wait()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(UserManager, "create_superuser", create_after_both_checked)
    outputs: list[str] = []
    errors: list[Exception] = []

    def run() -> None:
        try:
            outputs.append(_run())
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert errors == []
    user = User.objects.get()
    created = [output for output in outputs if "password:" in output]
    assert len(created) == 1
    assert user.check_password(_printed_password(created[0]))
    assert [output.strip() for output in outputs if output not in created] == [
        "A staff account exists already; its password is not shown again."
    ]
