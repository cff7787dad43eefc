from datetime import timedelta

from django.utils import timezone

from legal.models import TermsAcceptance
from tests.conftest import signed_in
from tests.factories import TermsVersionFactory, member


def test_a_customer_on_the_current_terms_uses_the_portal(owner_client):
    assert owner_client.get("/account/").status_code == 200


def test_when_new_terms_take_effect_the_portal_waits_until_the_user_accepts_them(owner, owner_client):
    new_terms = TermsVersionFactory(effective_at=timezone.now() - timedelta(minutes=1))

    response = owner_client.get("/keys/")
    assert response.status_code == 302
    assert response["Location"] == "/terms/accept/?next=%2Fkeys%2F"

    page = owner_client.get("/terms/accept/?next=/keys/")
    assert page.status_code == 200
    assert new_terms.version in page.content.decode()

    accepted = owner_client.post(
        "/terms/accept/",
        {"accept_terms": "on", "next": "/keys/"},
        REMOTE_ADDR="198.51.100.7",
        HTTP_USER_AGENT="Firefox/140",
    )
    assert accepted.status_code == 302 and accepted["Location"] == "/keys/"
    record = TermsAcceptance.objects.get(user=owner, terms=new_terms)
    assert (record.ip_address, record.user_agent) == ("198.51.100.7", "Firefox/140")
    assert owner_client.get("/keys/").status_code == 200


def test_accepting_needs_the_checkbox(owner, owner_client):
    new_terms = TermsVersionFactory(effective_at=timezone.now() - timedelta(minutes=1))

    response = owner_client.post("/terms/accept/", {"next": "/keys/"})

    assert response.status_code == 200
    assert "You must accept the Terms of Service to continue." in response.content.decode()
    assert not TermsAcceptance.objects.filter(user=owner, terms=new_terms).exists()


def test_accepting_never_redirects_off_site(owner_client):
    TermsVersionFactory(effective_at=timezone.now() - timedelta(minutes=1))
    response = owner_client.post("/terms/accept/", {"accept_terms": "on", "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/account/"


def test_terms_scheduled_for_later_do_not_interrupt_anyone(owner_client):
    TermsVersionFactory(effective_at=timezone.now() + timedelta(days=30))
    assert owner_client.get("/keys/").status_code == 200


def test_the_gate_leaves_logout_and_the_terms_themselves_reachable(owner_client):
    TermsVersionFactory(effective_at=timezone.now() - timedelta(minutes=1))
    assert owner_client.get("/terms/").status_code == 200
    assert owner_client.post("/logout/").status_code == 302
    assert owner_client.get("/account/").status_code == 302


def test_each_member_accepts_for_themselves(organization):
    colleague = member(organization=organization, role="member", accept_terms=False)
    response = signed_in(colleague).get("/account/")
    assert response.status_code == 302 and response["Location"].startswith("/terms/accept/")
