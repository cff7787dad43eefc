"""Who may see and who may act in the console: 404 for everyone but staff on every URL, 403 for staff without the
reviewer permission on every action, and no side effect on any refusal."""

import pytest

from abuse.models import AuditEntry, Ring, RingMember
from accounts.models import Role
from apikeys.models import ApiKey, KeyState
from console.actions import ACTIONS
from tests.conftest import signed_in
from tests.factories import member, raw_key_for

pytestmark = pytest.mark.django_db

PAGES = [
    "/console/",
    "/console/revenue/",
    "/console/red-team/",
    "/console/reviews/",
    "/console/organizations/{organization}/",
    "/console/rings/{ring}/",
    "/console/audit/",
    "/console/audit/?organization={organization}&action=freeze",
]


@pytest.fixture
def ring(organization) -> Ring:
    ring = Ring.objects.create(score=60)
    RingMember.objects.create(ring=ring, organization=organization)
    return ring


@pytest.fixture
def urls(organization, ring) -> list[str]:
    return [page.format(organization=organization.pk, ring=ring.pk) for page in PAGES]


@pytest.fixture
def non_staff_clients(client, owner, organization) -> dict:
    colleague = member(organization=organization, role=Role.MEMBER, email="colleague@example.com")
    return {"anonymous": client, "owner": signed_in(owner), "member": signed_in(colleague)}


def _unchanged(organization) -> None:
    assert not AuditEntry.objects.exists()
    assert set(ApiKey.objects.filter(organization=organization).values_list("state", flat=True)) == {KeyState.ACTIVE}


def test_every_console_page_is_404_for_anonymous_owner_and_member(urls, non_staff_clients):
    for who, client in non_staff_clients.items():
        for url in urls:
            assert client.get(url).status_code == 404, (who, url)


def test_an_inactive_staff_account_gets_404(urls, staff):
    client = signed_in(staff)
    staff.is_active = False
    staff.save()
    assert all(client.get(url).status_code == 404 for url in urls)


def test_staff_see_every_console_page(urls, staff_client):
    for url in urls:
        response = staff_client.get(url)
        assert response.status_code == 200, url
        assert "Content-Security-Policy" in response.headers


@pytest.mark.parametrize("slug", sorted(ACTIONS))
def test_action_posts_are_404_for_non_staff_and_change_nothing(slug, organization, non_staff_clients):
    raw_key_for(organization)
    url = f"/console/organizations/{organization.pk}/actions/{slug}/"
    for who, client in non_staff_clients.items():
        assert client.post(url, {f"{slug}-reason": "abuse"}).status_code == 404, who
    _unchanged(organization)


@pytest.mark.parametrize("slug", sorted(ACTIONS))
def test_action_posts_are_403_for_staff_without_the_reviewer_permission(slug, organization, staff_client):
    raw_key_for(organization)
    response = staff_client.post(f"/console/organizations/{organization.pk}/actions/{slug}/", {f"{slug}-reason": "x"})
    assert response.status_code == 403
    assert "You do not have access to this resource." in response.content.decode()  # the site's own 403 page
    _unchanged(organization)


def test_staff_without_the_permission_see_the_organization_read_only(organization, staff_client):
    page = staff_client.get(f"/console/organizations/{organization.pk}/").content.decode()
    assert "data-read-only" in page
    assert "data-action=" not in page and "/actions/" not in page


def test_reviewers_see_every_action_form(organization, reviewer_client):
    page = reviewer_client.get(f"/console/organizations/{organization.pk}/").content.decode()
    assert "data-read-only" not in page
    for slug in ACTIONS:
        assert f'action="/console/organizations/{organization.pk}/actions/{slug}/"' in page


def test_a_reviewer_freezes_and_the_audit_log_records_who_and_why(organization, reviewer, reviewer_client):
    raw_key_for(organization)
    response = reviewer_client.post(
        f"/console/organizations/{organization.pk}/actions/freeze/", {"freeze-reason": "Scraping the boundary."}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/console/organizations/{organization.pk}/"
    assert set(ApiKey.objects.filter(organization=organization).values_list("state", flat=True)) == {KeyState.FROZEN}
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor_id, entry.actor_label, entry.organization_id, entry.reason) == (
        "freeze", reviewer.pk, "reviewer@moat.example", organization.pk, "Scraping the boundary."
    )  # fmt: skip


@pytest.mark.parametrize("slug", sorted(ACTIONS))
@pytest.mark.parametrize("reason", [None, "", "   "])
def test_a_missing_reason_is_a_form_error_and_changes_nothing(slug, reason, organization, reviewer_client):
    raw_key_for(organization)
    data = {} if reason is None else {f"{slug}-reason": reason}
    response = reviewer_client.post(f"/console/organizations/{organization.pk}/actions/{slug}/", data)
    assert response.status_code == 400
    assert f'id="id_{slug}-reason_error"' in response.content.decode()
    assert "This field is required." in response.content.decode()
    _unchanged(organization)


def test_an_unknown_organization_is_404(organization, reviewer_client, staff_client):
    missing = organization.pk + 1000
    assert staff_client.get(f"/console/organizations/{missing}/").status_code == 404
    assert (
        reviewer_client.post(f"/console/organizations/{missing}/actions/warn/", {"warn-reason": "x"}).status_code == 404
    )
    assert staff_client.get("/console/rings/999999/").status_code == 404
    assert not AuditEntry.objects.exists()


def test_an_unknown_action_is_404_and_actions_refuse_get(organization, reviewer_client):
    url = f"/console/organizations/{organization.pk}/actions/"
    assert reviewer_client.post(url + "delete/", {"delete-reason": "x"}).status_code == 404
    assert reviewer_client.get(url + "freeze/").status_code == 405
    assert not AuditEntry.objects.exists()


def test_console_pages_refuse_post(staff_client):
    assert staff_client.post("/console/reviews/").status_code == 405
