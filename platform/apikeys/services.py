"""Writes of API keys. The raw key exists only in the return value of create/roll; it is never stored."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import Organization, User
from apikeys.cache import apikey_cache_refresh_for_organization
from apikeys.errors import EmailNotVerifiedError, KeyNotActiveError, OrganizationFrozenError
from apikeys.keys import display_fragment, generate_raw_key, hash_key
from apikeys.models import ApiKey, KeyState

ROLL_GRACE_CHOICES = {
    "0": timedelta(0),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


def _new_key(*, organization: Organization, name: str, created_by: User | None) -> tuple[ApiKey, str]:
    raw_key = generate_raw_key()
    api_key = ApiKey.objects.create(
        organization=organization,
        name=name,
        key_hash=hash_key(raw_key),
        display=display_fragment(raw_key),
        created_by=created_by,
    )
    return api_key, raw_key


@transaction.atomic
def apikey_create(*, organization: Organization, name: str, created_by: User | None) -> tuple[ApiKey, str]:
    """Create a key and return it with its raw value, which the caller shows once and then forgets.
    A person must have verified their email first; operators (`created_by=None`) are trusted."""
    if created_by is not None and not created_by.email_verified:
        raise EmailNotVerifiedError("Verify your email address before creating API keys.")
    _refuse_while_frozen(organization_id=organization.pk)
    return _new_key(organization=organization, name=name.strip(), created_by=created_by)


def _refuse_while_frozen(*, organization_id: int) -> None:
    # A frozen organization must not mint fresh keys around its freeze.
    if ApiKey.objects.filter(organization_id=organization_id, state=KeyState.FROZEN).exists():
        raise OrganizationFrozenError(
            "Your organization's API keys are frozen pending an abuse review, so new keys can't be created. "
            "You can appeal on the appeal page."
        )


@transaction.atomic
def apikey_roll(*, api_key: ApiKey, actor: User, grace: timedelta) -> tuple[ApiKey, str]:
    """Replace a key with a new one of the same name; the old one keeps working for `grace`, then expires."""
    if not actor.email_verified:
        raise EmailNotVerifiedError("Verify your email address before creating API keys.")
    old = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    _refuse_while_frozen(organization_id=old.organization_id)
    if not old.is_usable() or old.replaced_by_id is not None:
        raise KeyNotActiveError("Only an active key that has not been rolled can be rolled.")
    new_key, raw_key = _new_key(organization=old.organization, name=old.name, created_by=actor)
    now = timezone.now()
    old.replaced_by = new_key
    old.expires_at = now + grace
    fields = ["replaced_by", "expires_at"]
    if grace <= timedelta(0):
        old.state, old.state_reason = KeyState.REVOKED, "Rolled with no grace period."
        old.state_changed_by, old.state_changed_at = actor.email, now
        fields += ["state", "state_reason", "state_changed_by", "state_changed_at"]
    old.save(update_fields=fields)
    return new_key, raw_key


def _set_state(*, key_ids: list[int], from_states: list[str], to_state: str, actor: str, reason: str) -> int:
    """Move keys between states in one conditional UPDATE; returns how many changed. The serving processes'
    snapshots of the keys are dropped after commit, so the change reaches the API within seconds."""
    keys = ApiKey.objects.filter(id__in=key_ids, state__in=from_states)
    organization_ids = set(keys.values_list("organization_id", flat=True))
    changed = keys.update(
        state=to_state, state_reason=reason, state_changed_by=actor[:200], state_changed_at=timezone.now()
    )
    for organization_id in organization_ids:
        apikey_cache_refresh_for_organization(organization_id=organization_id)
    return changed


@transaction.atomic
def apikey_revoke(*, api_key: ApiKey, actor: str, reason: str = "") -> bool:
    """Revoke an active key for good. Revocation is a state, not a delete; revoking twice is a no-op (returns
    False). A frozen key is left alone: its freeze, with its reason and author, is evidence for the review."""
    return bool(
        _set_state(
            key_ids=[api_key.pk],
            from_states=[KeyState.ACTIVE],
            to_state=KeyState.REVOKED,
            actor=actor,
            reason=reason or "Revoked.",
        )
    )


@transaction.atomic
def apikeys_freeze_for_organization(*, organization_id: int, actor: str, reason: str) -> int:
    """Freeze every active key of an organization; returns how many were frozen."""
    ids = list(ApiKey.objects.filter(organization_id=organization_id).values_list("id", flat=True))
    return _set_state(key_ids=ids, from_states=[KeyState.ACTIVE], to_state=KeyState.FROZEN, actor=actor, reason=reason)


@transaction.atomic
def apikeys_unfreeze_for_organization(*, organization_id: int, actor: str, reason: str) -> int:
    """Return an organization's frozen keys to active; revoked keys stay revoked."""
    ids = list(ApiKey.objects.filter(organization_id=organization_id).values_list("id", flat=True))
    return _set_state(key_ids=ids, from_states=[KeyState.FROZEN], to_state=KeyState.ACTIVE, actor=actor, reason=reason)
