"""No page returns or changes another organization's keys, invitations, members, usage or billing: every tenant-scoped
route is tried with the ids of a second organization and must answer 404 and change nothing."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.models import Invitation, Membership, Organization, Role, User
from apikeys.models import ApiKey, KeyState
from tests.accounts.helpers import invite
from tests.conftest import signed_in
from tests.factories import member, raw_key_for


def _victim_key(victim_org: Organization) -> ApiKey:
    raw_key_for(victim_org, name="victim")
    return ApiKey.objects.get(organization=victim_org, name="victim")


def _victim_member(victim_org: Organization) -> Membership:
    return member(organization=victim_org, role=Role.MEMBER, email="victim.member@example.org").membership


# Every route that takes an object id: (method, builder, data). The builder gets the victim organization, creates
# the object the route acts on there, and returns the URL that names it.
CROSS_TENANT_ROUTES = {
    "apikeys:roll": ("post", lambda victim_org: f"/keys/{_victim_key(victim_org).pk}/roll/", {"grace": "0"}),
    "apikeys:revoke": ("post", lambda victim_org: f"/keys/{_victim_key(victim_org).pk}/revoke/", {"confirm": "on"}),
    "accounts:invitation_revoke": (
        "post",
        lambda victim_org: f"/invitations/{invite(victim_org)[0].pk}/revoke/",
        {},
    ),
    "accounts:member_remove": (
        "post",
        lambda victim_org: f"/members/{_victim_member(victim_org).pk}/remove/",
        {"confirm": "on"},
    ),
}


def _tenant_state(organization: Organization) -> dict[str, list[dict]]:
    """Every row of the organization that a tenant-scoped route could change."""
    return {
        "keys": list(ApiKey.objects.filter(organization=organization).order_by("id").values()),
        "invitations": list(Invitation.objects.filter(organization=organization).order_by("id").values()),
        "memberships": list(Membership.objects.filter(organization=organization).order_by("id").values()),
        "users": list(User.objects.filter(membership__organization=organization).order_by("id").values()),
    }


def _routes_with_ids(resolver: URLResolver, namespace: str = "") -> set[str]:
    found = set()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            if entry.namespace != "admin":
                found |= _routes_with_ids(entry, ns)
        elif isinstance(entry, URLPattern) and entry.pattern.converters:
            found.add(f"{namespace}{entry.name}")
    return found


def test_every_route_that_takes_an_id_is_in_the_cross_tenant_table():
    # Excluded: routes whose argument is a signed or random token, not the id of an object some tenant owns.
    # Console routes name any organization on purpose: they are staff-only, and every non-staff user gets 404 on
    # them (tests/console/test_access.py).
    tenant_routes = {route for route in _routes_with_ids(get_resolver()) if not route.startswith("console:")}
    assert tenant_routes - {
        "accounts:verify_email",
        "accounts:password_reset_confirm",
        "accounts:invitation_accept",
        "api:predict",  # a model id: models are shared by every tenant, and the API scopes by key
        # The Open Inference Protocol's routes take a model name and version: shared models, scoped by key.
        *("v2:model-metadata", "v2:version-metadata", "v2:model-ready", "v2:version-ready", "v2:infer"),
        "v2:version-infer",
    } == set(CROSS_TENANT_ROUTES)


@pytest.mark.parametrize("route", sorted(CROSS_TENANT_ROUTES))
def test_another_organizations_object_is_not_found_and_not_changed(route, owner, other_owner):
    victim_org = other_owner.membership.organization
    method, build_url, data = CROSS_TENANT_ROUTES[route]
    url = build_url(victim_org)
    before = _tenant_state(victim_org)

    response = getattr(signed_in(owner), method)(url, data)

    assert response.status_code == 404
    assert _tenant_state(victim_org) == before


def test_the_keys_page_lists_only_the_own_organizations_keys(owner, organization, other_owner):
    raw_key_for(organization, name="mine")
    raw_key_for(other_owner.membership.organization, name="theirs")
    mine = ApiKey.objects.get(name="mine")
    theirs = ApiKey.objects.get(name="theirs")

    page = signed_in(owner).get("/keys/").content.decode()

    assert mine.display in page
    assert theirs.display not in page and "theirs" not in page


def test_the_overview_shows_only_the_own_organization(owner, organization, other_owner):
    page = signed_in(owner).get("/account/").content.decode()
    assert organization.name in page
    assert other_owner.membership.organization.name not in page
    assert other_owner.email not in page


def test_staff_without_an_organization_get_404_on_tenant_pages(db):
    from tests.factories import UserFactory

    staff = UserFactory(is_staff=True)
    client = signed_in(staff)
    assert client.get("/keys/").status_code == 404
    assert client.get("/account/").status_code == 404
    assert ApiKey.objects.filter(state=KeyState.ACTIVE).count() == 0
