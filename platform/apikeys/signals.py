"""Keep the hot-path key snapshots (apikeys.cache) in step with every write that changes them, including edits
staff make in the admin: a key's state, the organization's tier, a membership, a Terms acceptance or version."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from accounts.models import Membership, Organization
from apikeys.cache import apikey_cache_drop_all, apikey_cache_refresh_for_organization
from apikeys.models import ApiKey
from legal.models import TermsAcceptance, TermsVersion


@receiver(post_save, sender=ApiKey, dispatch_uid="apikey-cache-key")
def _refresh_key(sender, instance: ApiKey, **kwargs) -> None:
    apikey_cache_refresh_for_organization(organization_id=instance.organization_id)


@receiver(post_save, sender=Organization, dispatch_uid="apikey-cache-organization")
def _refresh_organization(sender, instance: Organization, **kwargs) -> None:
    apikey_cache_refresh_for_organization(organization_id=instance.pk)


@receiver(post_save, sender=Membership, dispatch_uid="apikey-cache-membership-saved")
@receiver(post_delete, sender=Membership, dispatch_uid="apikey-cache-membership-deleted")
def _refresh_after_membership(sender, instance: Membership, **kwargs) -> None:
    # Whether the organization has a member on the current Terms can change with its members.
    apikey_cache_refresh_for_organization(organization_id=instance.organization_id)


@receiver(post_save, sender=TermsAcceptance, dispatch_uid="apikey-cache-terms")
def _refresh_after_terms(sender, instance: TermsAcceptance, **kwargs) -> None:
    membership = Membership.objects.filter(user_id=instance.user_id).first()
    if membership is not None:
        apikey_cache_refresh_for_organization(organization_id=membership.organization_id)


@receiver(post_save, sender=TermsVersion, dispatch_uid="apikey-cache-terms-version")
def _drop_after_terms_version(sender, instance: TermsVersion, **kwargs) -> None:
    if instance.effective_at <= timezone.now():
        apikey_cache_drop_all()
