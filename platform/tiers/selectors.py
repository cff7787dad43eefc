"""Reads of pricing tiers."""

from django.db.models import QuerySet

from tiers.models import Tier

DEFAULT_SIGNUP_TIER = "free"


def tier_list(*, public_only: bool = False) -> QuerySet[Tier]:
    tiers = Tier.objects.all()
    return tiers.filter(is_public=True) if public_only else tiers


def tier_get(*, code: str) -> Tier:
    """The tier with this code; raises Tier.DoesNotExist."""
    return Tier.objects.get(code=code)
