"""A person signs up, verifies their email, accepts the Terms and creates a key, through the real pages."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import SignupRecord, User
from apikeys.keys import hash_key
from apikeys.models import ApiKey
from legal.models import TermsAcceptance
from tests.factories import TermsVersionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_up_verify_accept_terms_and_create_a_key(page, live_server):
    page.goto("/signup/")
    page.fill("input[name=email]", "ada@example.com")
    page.fill("input[name=password]", "a long and unusual passphrase")
    page.fill("input[name=organization]", "Analytical Engines Ltd")
    page.check("input[name=accept_terms]")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(re.compile(r"/account/$"))
    assert page.get_by_text("Analytical Engines Ltd").first.is_visible()

    user = User.objects.get(email="ada@example.com")
    assert user.membership.organization.tier.code == "free"
    assert SignupRecord.objects.get(user=user).ip_address == "127.0.0.1"
    assert "Chrome" in SignupRecord.objects.get(user=user).user_agent

    # Before verification the keys page refuses to make a key.
    page.goto("/keys/")
    page.fill("input[name=name]", "too early")
    page.get_by_role("button", name="Create key").click()
    assert page.get_by_text("Verify your email address before creating API keys.").is_visible()
    assert not ApiKey.objects.exists()

    (message,) = mail.outbox
    verify_url = re.search(r"https?://\S+/verify-email/\S+/", message.body).group(0)
    assert verify_url.startswith(live_server.url)
    page.goto(verify_url)
    page.wait_for_url(re.compile(r"/keys/$"))
    user.refresh_from_db()
    assert user.email_verified

    # New Terms take effect: the portal asks for acceptance before anything else.
    new_terms = TermsVersionFactory(effective_at=timezone.now() - timedelta(seconds=1))
    page.goto("/keys/")
    page.wait_for_url(re.compile(r"/terms/accept/"))
    page.check("input[name=accept_terms]")
    page.get_by_role("button", name="Accept").click()
    page.wait_for_url(re.compile(r"/keys/$"))
    assert TermsAcceptance.objects.filter(user=user, terms=new_terms).exists()

    page.fill("input[name=name]", "production backend")
    page.get_by_role("button", name="Create key").click()
    shown = page.locator("[data-api-key]")
    raw_key = shown.get_attribute("data-api-key")
    assert raw_key.startswith("moat_live_")
    key = ApiKey.objects.get()
    assert key.key_hash == hash_key(raw_key) and key.name == "production backend"

    page.goto("/keys/")
    assert page.locator("[data-api-key]").count() == 0
    assert raw_key not in page.content()
    assert page.get_by_text(key.display).is_visible()
