from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys.authentication import bearer_token
from apikeys.cache import apikey_cache_forget_local, apikey_context
from apikeys.errors import InvalidApiKeyError, KeyFrozenError, TermsNotAcceptedError
from apikeys.keys import generate_raw_key
from apikeys.models import ApiKey
from apikeys.services import apikey_revoke, apikeys_freeze_for_organization
from tests.factories import TermsVersionFactory, member, raw_key_for


def test_bearer_token_reads_only_the_bearer_scheme():
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token("") is None


# Real commits: every write refreshes the Redis snapshots in an on-commit hook, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


def apikey_authenticate(*, raw_key):
    """What a serving process sees once its own copy has aged out (API_KEY_CACHE_SECONDS)."""
    apikey_cache_forget_local()
    return apikey_context(raw_key=raw_key)


def test_an_active_key_authenticates_with_its_organization_and_tier(organization):
    raw = raw_key_for(organization)

    context = apikey_authenticate(raw_key=raw)

    assert context.organization_id == organization.pk
    assert context.tier_code == "free"


@pytest.mark.parametrize("raw", [None, "", "moat_live_short", "not-a-key"])
def test_missing_and_malformed_keys_are_invalid(raw):
    with pytest.raises(InvalidApiKeyError):
        apikey_authenticate(raw_key=raw)


def test_a_well_formed_unknown_key_is_invalid():
    with pytest.raises(InvalidApiKeyError):
        apikey_authenticate(raw_key=generate_raw_key())


def test_a_revoked_key_is_invalid(organization):
    raw = raw_key_for(organization)
    apikey_revoke(api_key=ApiKey.objects.get(organization=organization), actor="test")
    with pytest.raises(InvalidApiKeyError):
        apikey_authenticate(raw_key=raw)


def test_an_expired_rolled_key_is_invalid(organization):
    raw = raw_key_for(organization)
    key = ApiKey.objects.get(organization=organization)
    key.expires_at = timezone.now() - timedelta(seconds=1)
    key.save()
    with pytest.raises(InvalidApiKeyError):
        apikey_authenticate(raw_key=raw)


def test_a_frozen_key_is_refused_as_frozen(organization):
    raw = raw_key_for(organization)
    apikeys_freeze_for_organization(organization_id=organization.pk, actor="abuse:test", reason="probing")
    with pytest.raises(KeyFrozenError) as raised:
        apikey_authenticate(raw_key=raw)
    assert raised.value.code == "key_frozen" and raised.value.status == 403


def test_an_organization_with_no_member_on_the_current_terms_is_refused():
    user = member(accept_terms=False)
    raw = raw_key_for(user.membership.organization)
    with pytest.raises(TermsNotAcceptedError) as raised:
        apikey_authenticate(raw_key=raw)
    assert raised.value.code == "terms_not_accepted"


def test_a_new_terms_version_blocks_the_api_until_one_member_accepts_it(organization):
    from legal.services import terms_accept

    raw = raw_key_for(organization)
    colleague = member(organization=organization, role="member")
    new_terms = TermsVersionFactory(effective_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(TermsNotAcceptedError):
        apikey_authenticate(raw_key=raw)

    terms_accept(user_id=colleague.pk, terms=new_terms, ip_address=None, user_agent="tests")
    assert apikey_authenticate(raw_key=raw).organization_id == organization.pk


def test_a_terms_version_that_is_not_yet_effective_changes_nothing(organization):
    raw = raw_key_for(organization)
    TermsVersionFactory(effective_at=timezone.now() + timedelta(days=7))
    assert apikey_authenticate(raw_key=raw).organization_id == organization.pk
