"""Factories for the suite. Keys are made through the service, so tests hold the raw key like a customer does."""

from datetime import UTC, datetime

import factory
from django.utils import timezone

from accounts.models import Membership, Organization, Role, SignupRecord, User
from apikeys.services import apikey_create
from legal.models import TermsVersion
from legal.selectors import terms_current
from legal.services import terms_accept
from tiers.models import Tier

DEFAULT_PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    email_verified_at = factory.LazyFunction(timezone.now)
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    tier = factory.LazyFunction(lambda: Tier.objects.get(code="free"))


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.OWNER


class SignupRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SignupRecord

    user = factory.SubFactory(UserFactory)
    organization = factory.LazyAttribute(lambda o: o.user.membership.organization)
    ip_address = "203.0.113.10"
    user_agent = "Mozilla/5.0"
    email = factory.LazyAttribute(lambda o: o.user.email)
    email_canonical = factory.LazyAttribute(lambda o: o.user.email_canonical)
    email_domain = factory.LazyAttribute(lambda o: o.user.email.split("@")[1])


class TermsVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TermsVersion

    version = factory.Sequence(lambda n: f"2030-01-{n + 1:02d}")
    body = "New terms.\n\nNo scraping. No training models on our outputs."
    effective_at = factory.LazyFunction(timezone.now)


def member(
    *,
    organization: Organization | None = None,
    role: str = Role.OWNER,
    accept_terms: bool = True,
    **user_fields,
) -> User:
    """A verified user in an organization (a new free one by default) who accepted the current Terms."""
    user = UserFactory(**user_fields)
    MembershipFactory(user=user, organization=organization or OrganizationFactory(), role=role)
    if accept_terms and (terms := terms_current()) is not None:
        terms_accept(user_id=user.pk, terms=terms, ip_address="203.0.113.10", user_agent="tests")
    return user


def raw_key_for(organization: Organization, *, name: str = "test key") -> str:
    """A new active key of the organization, returned raw."""
    return apikey_create(organization=organization, name=name, created_by=None)[1]


SEEDED_TERMS_EFFECTIVE = datetime(2026, 11, 1, tzinfo=UTC)
