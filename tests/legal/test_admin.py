"""The Terms in the admin: a version someone has accepted is read-only and cannot be deleted."""

import pytest
from django.contrib import admin

from legal.admin import TermsVersionAdmin
from legal.models import TermsVersion
from legal.services import terms_accept
from tests.conftest import signed_in
from tests.factories import TermsVersionFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    return UserFactory(email="staff@moat.local", is_staff=True, is_superuser=True)


def _accepted(terms: TermsVersion) -> TermsVersion:
    terms_accept(user_id=UserFactory().pk, terms=terms, ip_address=None, user_agent="tests")
    return terms


def _edit_data(terms: TermsVersion, **overrides) -> dict:
    return {
        "version": terms.version,
        "title": terms.title,
        "body": terms.body,
        "effective_at_0": terms.effective_at.strftime("%Y-%m-%d"),
        "effective_at_1": terms.effective_at.strftime("%H:%M:%S"),
        "created_at_0": terms.created_at.strftime("%Y-%m-%d"),
        "created_at_1": terms.created_at.strftime("%H:%M:%S"),
    } | overrides


def test_a_version_nobody_accepted_can_be_changed_and_deleted(rf, staff):
    request = rf.get("/admin/")
    request.user = staff
    terms = TermsVersionFactory()
    model_admin = TermsVersionAdmin(TermsVersion, admin.site)

    assert model_admin.has_change_permission(request, terms) is True
    assert model_admin.has_delete_permission(request, terms) is True


def test_a_version_someone_accepted_can_be_neither_changed_nor_deleted(rf, staff):
    request = rf.get("/admin/")
    request.user = staff
    terms = _accepted(TermsVersionFactory())
    model_admin = TermsVersionAdmin(TermsVersion, admin.site)

    assert model_admin.has_change_permission(request, terms) is False
    assert model_admin.has_delete_permission(request, terms) is False
    assert model_admin.has_change_permission(request) is True  # the list, and versions nobody accepted yet


def test_staff_edit_a_version_nobody_accepted_in_the_admin(staff):
    terms = TermsVersionFactory(body="Draft.")

    response = signed_in(staff).post(f"/admin/legal/termsversion/{terms.pk}/change/", _edit_data(terms, body="Final."))

    assert response.status_code == 302
    assert TermsVersion.objects.get(pk=terms.pk).body == "Final."


def test_the_admin_shows_an_accepted_version_read_only_and_refuses_an_edit(staff):
    terms = _accepted(TermsVersionFactory(body="Accepted text."))
    client = signed_in(staff)

    page = client.get(f"/admin/legal/termsversion/{terms.pk}/change/")
    posted = client.post(f"/admin/legal/termsversion/{terms.pk}/change/", _edit_data(terms, body="Rewritten."))

    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert 'name="body"' not in page.content.decode()
    assert posted.status_code == 403
    assert TermsVersion.objects.get(pk=terms.pk).body == "Accepted text."


def test_the_admin_refuses_to_delete_an_accepted_version(staff):
    terms = _accepted(TermsVersionFactory())
    client = signed_in(staff)

    page = client.get(f"/admin/legal/termsversion/{terms.pk}/delete/")
    posted = client.post(f"/admin/legal/termsversion/{terms.pk}/delete/", {"post": "yes"})

    assert (page.status_code, posted.status_code) == (403, 403)
    assert TermsVersion.objects.filter(pk=terms.pk).exists()
