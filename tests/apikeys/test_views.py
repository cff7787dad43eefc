import re

import pytest
from django.test import Client

from apikeys.keys import hash_key
from apikeys.models import ApiKey, KeyState
from tests.conftest import signed_in
from tests.factories import member

KEY_IN_PAGE = re.compile(r'data-api-key="(moat_live_[A-Za-z0-9_-]{43})"')


def test_a_new_key_is_shown_once_and_only_its_hash_is_stored(owner_client, organization):
    response = owner_client.post("/keys/", {"name": "production"})

    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    raw = KEY_IN_PAGE.search(response.content.decode()).group(1)
    key = ApiKey.objects.get(organization=organization)
    assert key.key_hash == hash_key(raw) and key.name == "production"

    again = owner_client.get("/keys/").content.decode()
    assert raw not in again
    assert key.display in again
    assert "data-api-key" not in again


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_a_bad_key_name_is_a_form_error(owner_client, organization, name):
    response = owner_client.post("/keys/", {"name": name})
    assert response.status_code == 400
    assert 'class="field-error' in response.content.decode() or "errorlist" in response.content.decode()
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_no_key_until_the_email_is_verified():
    user = member(email_verified_at=None)
    response = signed_in(user).post("/keys/", {"name": "k"})
    assert response.status_code == 400
    assert "Verify your email address before creating API keys." in response.content.decode()
    assert not ApiKey.objects.exists()


def test_revoking_needs_confirmation_then_the_key_stops_working(owner_client, organization):
    owner_client.post("/keys/", {"name": "k"})
    key = ApiKey.objects.get()

    owner_client.post(f"/keys/{key.pk}/revoke/", {})
    key.refresh_from_db()
    assert key.state == KeyState.ACTIVE

    response = owner_client.post(f"/keys/{key.pk}/revoke/", {"confirm": "on"}, follow=True)
    key.refresh_from_db()
    assert key.state == KeyState.REVOKED
    assert "no longer works" in response.content.decode()


def test_rolling_shows_the_replacement_once(owner_client, organization):
    owner_client.post("/keys/", {"name": "k"})
    old = ApiKey.objects.get()

    response = owner_client.post(f"/keys/{old.pk}/roll/", {"grace": "1h"})

    assert response.status_code == 201
    raw = KEY_IN_PAGE.search(response.content.decode()).group(1)
    old.refresh_from_db()
    assert old.replaced_by.key_hash == hash_key(raw)
    assert old.expires_at is not None


def test_rolling_with_an_unknown_grace_is_refused_without_change(owner_client, organization):
    owner_client.post("/keys/", {"name": "k"})
    old = ApiKey.objects.get()
    response = owner_client.post(f"/keys/{old.pk}/roll/", {"grace": "forever"}, follow=True)
    assert "Choose when the old key should stop working." in response.content.decode()
    assert ApiKey.objects.count() == 1


@pytest.mark.django_db
def test_signed_out_visitors_are_sent_to_login():
    response = Client().get("/keys/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
