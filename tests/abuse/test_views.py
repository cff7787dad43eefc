"""The appeal page: a member sees the organization's standing and the reasons given, and can appeal."""

import pytest
from django.test import Client

from abuse.models import Appeal, AuditAction, AuditEntry
from abuse.services import Actor, organization_freeze, organization_throttle
from tests.conftest import signed_in
from tests.factories import member, raw_key_for

pytestmark = pytest.mark.django_db


def test_the_appeal_page_needs_a_signed_in_member():
    response = Client().get("/appeal/")
    assert (response.status_code, response["Location"]) == (302, "/login/?next=/appeal/")


def test_an_organization_in_good_standing_is_told_so(owner_client):
    page = owner_client.get("/appeal/").content.decode()
    assert "in good standing" in page


def test_a_frozen_and_throttled_organization_sees_the_decisions_and_their_reasons_but_no_score(owner, owner_client):
    organization = owner.membership.organization
    raw_key_for(organization)
    organization_throttle(organization=organization, actor=Actor.jobs(), reason="Unusual volume.")
    organization_freeze(organization=organization, actor=Actor.jobs(), reason="Inputs far from natural digits.")

    page = owner_client.get("/appeal/").content.decode()

    assert "1 API key frozen" in page
    assert "Reduced limits" in page and "0.25 of your tier" in page
    assert "Inputs far from natural digits." in page and "Unusual volume." in page
    assert "risk_state" not in page and "/100" not in page


def test_a_member_appeals_and_the_review_team_gets_it(owner):
    client = signed_in(owner)
    response = client.post("/appeal/", {"message": "We run a handwriting study; see our paper."})
    assert response.status_code == 302
    appeal = Appeal.objects.get(organization=owner.membership.organization)
    assert (appeal.submitted_by, appeal.message) == (owner, "We run a handwriting study; see our paper.")
    assert AuditEntry.objects.filter(action=AuditAction.APPEAL, organization_id=appeal.organization_id).exists()
    assert "We run a handwriting study" in client.get("/appeal/").content.decode()


@pytest.mark.parametrize("message", ["", "   ", "x" * 5001])
def test_an_empty_or_oversized_appeal_is_a_form_error_and_nothing_is_stored(owner_client, message):
    response = owner_client.post("/appeal/", {"message": message})
    assert response.status_code == 400
    assert "field-error" in response.content.decode()
    assert not Appeal.objects.exists()


def test_a_member_sees_only_their_own_organization(owner_client):
    stranger = member(email="stranger@other.example")
    raw_key_for(stranger.membership.organization)
    organization_freeze(organization=stranger.membership.organization, actor=Actor.jobs(), reason="Secret reason.")
    page = owner_client.get("/appeal/").content.decode()
    assert "Secret reason." not in page
