"""Reads of API keys, always scoped to one organization."""

from django.db.models import QuerySet

from apikeys.models import ApiKey
from core.errors import NotFoundError


def apikey_list_for_org(*, organization_id: int) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization_id=organization_id)


def apikey_get_for_org(*, organization_id: int, key_id: int) -> ApiKey:
    """The key, if it belongs to the organization. Missing and not-yours raise the same NotFoundError."""
    key = ApiKey.objects.filter(organization_id=organization_id, id=key_id).first()
    if key is None:
        raise NotFoundError("No such API key.")
    return key
