"""Acceptances keep the fingerprint of the text that was accepted."""

import hashlib
import importlib

import pytest
from django.apps import apps

from legal.models import TermsAcceptance, TermsVersion
from legal.services import terms_accept
from tests.factories import TermsVersionFactory, UserFactory

pytestmark = pytest.mark.django_db


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _accept(user, terms: TermsVersion) -> TermsAcceptance:
    return terms_accept(user_id=user.pk, terms=terms, ip_address="203.0.113.10", user_agent="tests")


def test_terms_accept_stores_the_sha256_of_the_versions_text():
    terms = TermsVersionFactory(body="Be kind.\n\nNo scraping.")

    acceptance = _accept(UserFactory(), terms)

    acceptance.refresh_from_db()
    assert acceptance.body_sha256 == _sha256("Be kind.\n\nNo scraping.")


def test_an_acceptance_keeps_the_sha256_of_the_accepted_text_after_the_version_is_edited():
    terms = TermsVersionFactory(body="Original text.")
    user = UserFactory()
    _accept(user, terms)

    TermsVersion.objects.filter(pk=terms.pk).update(body="Edited text.")

    assert TermsAcceptance.objects.get(user=user).body_sha256 == _sha256("Original text.")


def test_accepting_again_after_an_edit_keeps_the_first_record_and_its_sha256():
    terms = TermsVersionFactory(body="Original text.")
    user = UserFactory()
    first = _accept(user, terms)
    terms.body = "Edited text."
    terms.save()

    again = _accept(user, terms)

    assert again.pk == first.pk
    assert list(TermsAcceptance.objects.filter(user=user).values_list("body_sha256", flat=True)) == [
        _sha256("Original text.")
    ]


def test_the_data_migration_fills_the_sha256_of_earlier_acceptances_from_their_versions_text():
    old, new = TermsVersionFactory(body="Old text."), TermsVersionFactory(body="New text.")
    user = UserFactory()
    for terms in (old, new):
        _accept(user, terms)
    TermsAcceptance.objects.update(body_sha256="")  # as 0003 leaves the rows recorded before the column existed

    importlib.import_module("legal.migrations.0004_fill_termsacceptance_body_sha256").fill(apps, None)

    assert dict(TermsAcceptance.objects.values_list("terms__body", "body_sha256")) == {
        "Old text.": _sha256("Old text."),
        "New text.": _sha256("New text."),
    }
