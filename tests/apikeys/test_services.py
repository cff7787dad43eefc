from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys.errors import EmailNotVerifiedError, KeyNotActiveError
from apikeys.keys import hash_key
from apikeys.models import ApiKey, KeyState
from apikeys.services import (
    apikey_create,
    apikey_revoke,
    apikey_roll,
    apikeys_freeze_for_organization,
    apikeys_unfreeze_for_organization,
)
from tests.factories import member, raw_key_for


def test_create_stores_only_the_hash_and_a_display_fragment(owner, organization):
    api_key, raw = apikey_create(organization=organization, name=" backend ", created_by=owner)

    row = ApiKey.objects.get(pk=api_key.pk)
    assert row.key_hash == hash_key(raw)
    assert row.name == "backend"
    assert row.state == KeyState.ACTIVE
    assert row.created_by == owner
    stored = [str(value) for value in ApiKey.objects.filter(pk=row.pk).values().get().values()]
    assert all(raw not in value and raw[-20:] not in value for value in stored)


@pytest.mark.django_db
def test_a_person_must_verify_their_email_before_creating_a_key():
    user = member(email_verified_at=None)
    with pytest.raises(EmailNotVerifiedError):
        apikey_create(organization=user.membership.organization, name="k", created_by=user)
    assert ApiKey.objects.count() == 0


def test_revocation_is_a_state_not_a_delete_and_is_idempotent(owner, organization):
    api_key, _ = apikey_create(organization=organization, name="k", created_by=owner)

    assert apikey_revoke(api_key=api_key, actor=owner.email, reason="leaked") is True
    assert apikey_revoke(api_key=api_key, actor=owner.email, reason="again") is False

    api_key.refresh_from_db()
    assert api_key.state == KeyState.REVOKED
    assert api_key.state_reason == "leaked"
    assert api_key.state_changed_by == owner.email
    assert api_key.state_changed_at is not None


def test_rolling_makes_a_new_key_and_the_old_one_expires_after_the_grace_period(owner, organization):
    old, _ = apikey_create(organization=organization, name="prod", created_by=owner)
    before = timezone.now()

    new, new_raw = apikey_roll(api_key=old, actor=owner, grace=timedelta(hours=24))

    old.refresh_from_db()
    assert new.name == "prod" and new.key_hash == hash_key(new_raw)
    assert old.replaced_by == new
    assert old.state == KeyState.ACTIVE
    assert before + timedelta(hours=24) <= old.expires_at <= timezone.now() + timedelta(hours=24)
    assert old.is_usable()
    assert not old.is_usable(now=old.expires_at + timedelta(seconds=1))


def test_rolling_with_no_grace_revokes_the_old_key_at_once(owner, organization):
    old, _ = apikey_create(organization=organization, name="prod", created_by=owner)

    apikey_roll(api_key=old, actor=owner, grace=timedelta(0))

    old.refresh_from_db()
    assert old.state == KeyState.REVOKED
    assert not old.is_usable()


def test_a_key_can_be_rolled_only_once_and_only_while_active(owner, organization):
    old, _ = apikey_create(organization=organization, name="prod", created_by=owner)
    apikey_roll(api_key=old, actor=owner, grace=timedelta(hours=1))
    with pytest.raises(KeyNotActiveError):
        apikey_roll(api_key=old, actor=owner, grace=timedelta(hours=1))

    revoked, _ = apikey_create(organization=organization, name="gone", created_by=owner)
    apikey_revoke(api_key=revoked, actor=owner.email)
    with pytest.raises(KeyNotActiveError):
        apikey_roll(api_key=revoked, actor=owner, grace=timedelta(hours=1))
    assert ApiKey.objects.filter(organization=organization).count() == 3


def test_freezing_an_organization_freezes_only_its_active_keys_and_records_why(organization, other_owner):
    raw_key_for(organization)
    revoked, _ = apikey_create(organization=organization, name="old", created_by=None)
    apikey_revoke(api_key=revoked, actor="test")
    rival_key, _ = apikey_create(organization=other_owner.membership.organization, name="r", created_by=None)

    frozen = apikeys_freeze_for_organization(
        organization_id=organization.pk, actor="abuse:extraction-risk", reason="risk 91"
    )

    assert frozen == 1
    states = dict(ApiKey.objects.filter(organization=organization).values_list("name", "state"))
    assert states == {"test key": KeyState.FROZEN, "old": KeyState.REVOKED}
    assert ApiKey.objects.get(name="test key").state_changed_by == "abuse:extraction-risk"
    rival_key.refresh_from_db()
    assert rival_key.state == KeyState.ACTIVE

    assert apikeys_unfreeze_for_organization(organization_id=organization.pk, actor="staff:x", reason="ok") == 1
    assert ApiKey.objects.get(name="test key").state == KeyState.ACTIVE
    assert ApiKey.objects.get(name="old").state == KeyState.REVOKED


def test_a_frozen_organization_can_neither_create_nor_roll_keys(owner, organization):
    from apikeys.errors import OrganizationFrozenError

    key, _ = apikey_create(organization=organization, name="k", created_by=owner)
    apikeys_freeze_for_organization(organization_id=organization.pk, actor="abuse:test", reason="extraction")

    with pytest.raises(OrganizationFrozenError):
        apikey_create(organization=organization, name="fresh", created_by=owner)
    with pytest.raises(OrganizationFrozenError):
        apikey_roll(api_key=key, actor=owner, grace=timedelta(hours=1))
    assert ApiKey.objects.filter(organization=organization).count() == 1


def test_a_customer_cannot_revoke_a_frozen_key_and_erase_the_freeze(owner, organization):
    key, _ = apikey_create(organization=organization, name="k", created_by=owner)
    apikeys_freeze_for_organization(organization_id=organization.pk, actor="abuse:risk", reason="risk 91")

    assert apikey_revoke(api_key=key, actor=owner.email, reason="hiding") is False

    key.refresh_from_db()
    assert (key.state, key.state_reason, key.state_changed_by) == (KeyState.FROZEN, "risk 91", "abuse:risk")
