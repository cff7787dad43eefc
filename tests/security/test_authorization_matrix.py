"""Every URL pattern of the URLconf, every method, every role, against the checked-in table
authorization_matrix.txt: a route without an entry, or an answer that differs from its entry, fails.

Each request runs inside a savepoint that is rolled back afterwards, so every cell sees the same world (a revoke
allowed in one cell does not change the next) and the cells can be checked for side effects: a refused request
(401, 403, 404, 405, or a redirect to sign-in) must not have inserted, updated or deleted a single row in any table,
by PostgreSQL's own count (pg_stat_xact_user_tables). Other tenants get 404 on everything of organization A that
they can name, exactly what they get for an id that does not exist, and never see A's name, people or keys.

Every answer is also checked for what tests/security/test_headers_and_errors.py specifies for all responses: the
security headers on HTML, and no framework name, version, filesystem path or traceback.

Admin expectations: the admin is staff-only, so everyone else is sent to sign in (L); staff get what Django's
permissions give them: the index and nothing else for staff without model permissions (the reviewers' group holds
only abuse.review_abuse, which the console uses), everything for the superuser, within what each ModelAdmin allows
(read-only records answer 403 to change and delete)."""

import re
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from abuse.models import Ring, RingMember
from accounts.models import Organization, Role, User
from accounts.services import email_verification_token
from apikeys.models import ApiKey
from console.actions import ACTIONS
from tests.accounts.helpers import invite
from tests.conftest import signed_in
from tests.console.conftest import make_reviewer
from tests.factories import OrganizationFactory, UserFactory, member, raw_key_for
from tests.security.leaks import assert_names_no_software, assert_security_headers

pytestmark = pytest.mark.django_db

TABLE = Path(__file__).with_name("authorization_matrix.txt")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ROLES = ("anonymous", "api_key", "member_a", "owner_a", "member_b", "owner_b", "staff", "reviewer", "superuser")
OTHER_TENANT = ("member_b", "owner_b")
STAFF = ("staff", "reviewer", "superuser")
# Answers that refuse: such a request must have written nothing. (Signing out also ends on the sign-in page.)
REFUSALS = {"L", "401", "403", "404", "405"}
SIGN_OUT = {"accounts:logout", "admin:logout"}
# Links mailed to one person, whose token is the credential: whoever holds one is taken to be its recipient, and
# sees whom or what it is for (the invitee's organization and address, the address being verified).
TOKEN_LINKS = {"accounts:verify_email", "accounts:invitation_accept", "accounts:password_reset_confirm"}
MISSING_ID = 2_000_000_000


@dataclass
class World:
    """Organization A (an owner, a member, a key, an invitation, a ring), organization B (an owner, a member), staff
    without the reviewer permission, a reviewer, a superuser; and the values the URL patterns are filled with."""

    users: dict[str, User | None]
    raw_key: str
    secrets_of_a: tuple[str, ...]  # what no other tenant may ever see
    arguments: dict[str, str]  # URL argument name -> value naming an object of organization A
    missing: dict[str, str]  # the same arguments naming nothing


@pytest.fixture
def world(db) -> World:
    org_a = OrganizationFactory(name="Alpha Analytics")
    owner_a = member(organization=org_a, email="owner.a@alpha.example")
    member_a = member(organization=org_a, role=Role.MEMBER, email="member.a@alpha.example")
    raw_key = raw_key_for(org_a, name="alpha production")
    key = ApiKey.objects.get(organization=org_a)
    invitation, invitation_token = invite(org_a, email="invitee@alpha.example")
    ring = Ring.objects.create(score=60)
    RingMember.objects.create(ring=ring, organization=org_a)
    org_b = OrganizationFactory(name="Bravo Labs")
    owner_b = member(organization=org_b, email="owner.b@bravo.example")
    member_b = member(organization=org_b, role=Role.MEMBER, email="member.b@bravo.example")
    superuser = UserFactory(email="root@moat.example", is_staff=True, is_superuser=True)
    users = {
        "anonymous": None,
        "api_key": None,
        "member_a": member_a,
        "owner_a": owner_a,
        "member_b": member_b,
        "owner_b": owner_b,
        "staff": UserFactory(email="staff@moat.example", is_staff=True),
        "reviewer": make_reviewer(),
        "superuser": superuser,
    }
    arguments = {
        "key_id": str(key.pk),
        "membership_id": str(member_a.membership.pk),
        "invitation_id": str(invitation.pk),
        "token": invitation_token,
        "organization_id": str(org_a.pk),
        "ring_id": str(ring.pk),
        "action": sorted(ACTIONS)[0],
        "model_id": "digits",
        "model_name": "digits",
        "version": "1",
        "uidb64": urlsafe_base64_encode(force_bytes(owner_a.pk)),
        "id": str(member_a.pk),  # the admin's password change of a user
        "app_label": "accounts",
        "url": "no-such-admin-page/",
    }
    missing = {name: str(MISSING_ID) for name in ("key_id", "membership_id", "invitation_id", "organization_id")}
    secrets_of_a = (org_a.name, owner_a.email, member_a.email, key.display, invitation.email)
    return World(users=users, raw_key=raw_key, secrets_of_a=secrets_of_a, arguments=arguments, missing=missing)


# --- the URLconf -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str  # the URL name, or the pattern itself for an unnamed one
    pattern: str
    entry: URLPattern


def _routes(resolver: URLResolver, prefix: str = "", namespace: str = "") -> list[Route]:
    found = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            found += _routes(entry, prefix + str(entry.pattern), inner)
        else:
            pattern = prefix + str(entry.pattern)
            found.append(Route(f"{namespace}{entry.name}" if entry.name else pattern, pattern, entry))
    return found


def all_routes() -> list[Route]:
    return _routes(get_resolver())


def _admin_object_id(route: Route) -> str:
    """The first row of the ModelAdmin's model (created by the world fixture, or seeded by a migration), else an id
    that names nothing."""
    model_admin = getattr(route.entry.callback, "model_admin", None)
    if model_admin is None:  # the admin's `<object_id>/` redirect
        return "1"
    first = model_admin.model._default_manager.order_by("pk").first()
    return str(first.pk) if first is not None else str(MISSING_ID)


def url_of(route: Route, world: World, *, missing: bool = False) -> str:
    """The route's URL, its arguments naming organization A's objects (or, with `missing`, nothing)."""
    values = world.missing if missing else world.arguments
    pattern = route.pattern
    if pattern.startswith("admin/^"):  # the admin's app index: a regex
        return f"/admin/{values['app_label']}/"
    if pattern.startswith("admin/(?P<url>"):
        return f"/admin/{values['url']}"
    if pattern.startswith("^v1/"):  # the API's catch-all
        return "/v1/no-such-endpoint"

    def fill(match: re.Match) -> str:
        name = match.group(2)
        if route.name == "admin:view_on_site":  # "view on site" of organization A's row
            organization = Organization.objects.get(name=world.secrets_of_a[0])
            return str(
                ContentType.objects.get_for_model(Organization).pk if name == "content_type_id" else organization.pk
            )
        if name == "object_id":
            return str(MISSING_ID) if missing else _admin_object_id(route)
        if route.name == "accounts:password_reset_confirm" and name == "token":
            return default_token_generator.make_token(world.users["owner_a"])
        if route.name == "accounts:verify_email":
            return email_verification_token(user=world.users["member_a"])
        return values.get(name) or world.arguments[name]

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, pattern)


# --- the table -------------------------------------------------------------------------------------------------


def load_table() -> dict[tuple[str, str], tuple[str, ...]]:
    table: dict[tuple[str, str], tuple[str, ...]] = {}
    for number, line in enumerate(TABLE.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        route, methods, *answers = line.split()
        assert len(answers) == len(ROLES), f"{TABLE.name}:{number}: {len(answers)} answers for {len(ROLES)} roles"
        for method in methods.split(","):
            assert (route, method) not in table, f"{TABLE.name}:{number}: {route} {method} twice"
            table[(route, method)] = tuple(answers)
    return table


def format_rows(rows: dict[tuple[str, str], tuple[str, ...]]) -> str:
    """Rows in the table's own layout (methods with identical answers share a line), for pasting after review."""
    lines, by_route = [], {}
    for (route, method), answers in rows.items():
        by_route.setdefault(route, []).append((method, answers))
    for route, cells in by_route.items():
        groups: list[tuple[list[str], tuple[str, ...]]] = []
        for method, answers in cells:
            if groups and groups[-1][1] == answers:
                groups[-1][0].append(method)
            else:
                groups.append(([method], answers))
        for methods, answers in groups:
            lines.append(f"{route:<52} {','.join(methods):<24} " + " ".join(f"{answer:<4}" for answer in answers))
    return "\n".join(line.rstrip() for line in lines)


# --- the requests ----------------------------------------------------------------------------------------------


def _clients(world: World) -> dict[str, Client]:
    _last_writes.clear()  # a new test, a new transaction: PostgreSQL's counters started again
    clients = {}
    for role in ROLES:
        user = world.users[role]
        client = signed_in(user) if user is not None else Client()
        client.raise_request_exception = False  # a crash is a 500 answer in the table, never hidden
        clients[role] = client
    return clients


_last_writes: dict[str, tuple[int, int, int]] = {}


def _writes() -> dict[str, tuple[int, int, int]]:
    """Rows inserted, updated and deleted so far in this transaction, per table (PostgreSQL's own counters)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_xact_user_tables "
            "WHERE n_tup_ins + n_tup_upd + n_tup_del > 0"
        )
        return {name: (inserted, updated, deleted) for name, inserted, updated, deleted in cursor.fetchall()}


@dataclass(frozen=True)
class Answer:
    code: str  # the status, or L for a redirect to a sign-in page
    wrote: tuple[str, ...]  # tables the request changed
    body: str
    problems: tuple[str, ...]  # what the response carries that no response may (tests/security/leaks.py)


def _code(response) -> str:
    if response.status_code == 302:
        location = response.headers["Location"]
        if location.startswith(("/login/", "/admin/login/")):
            return "L"
    return str(response.status_code)


def request(client: Client, method: str, url: str, *, role: str, world: World) -> Answer:
    """One request in a savepoint rolled back afterwards; the client's cookies are put back too (a logout must not
    sign the role out of the next cell)."""
    cookies = SimpleCookie(client.cookies.output(header="", sep="\n"))
    headers = {"HTTP_AUTHORIZATION": f"Bearer {world.raw_key}"} if role == "api_key" else {}
    savepoint = transaction.savepoint()
    # The counters only grow, and nothing but this request runs between two calls: one query per request.
    before = _last_writes.copy() if _last_writes else _writes()
    try:
        response = client.generic(method, url, **headers)
        after = _writes()
    finally:
        transaction.savepoint_rollback(savepoint)
        client.cookies = cookies
    _last_writes.clear()
    _last_writes.update(after)
    wrote = tuple(sorted(table for table, counts in after.items() if before.get(table) != counts))
    admin_page = url.startswith("/admin/") and role in STAFF and response.status_code < 300
    problems = []
    for check in (assert_security_headers, lambda r: assert_names_no_software(r, admin_page=admin_page)):
        try:
            check(response)
        except AssertionError as error:
            problems.append(str(error) or "a check failed")
    return Answer(
        code=_code(response), wrote=wrote, body=response.content.decode(errors="replace"), problems=tuple(problems)
    )


def test_every_route_method_and_role_answers_as_the_table_says(world, settings):
    # Limits with tests of their own would otherwise bind when nine roles post the same form.
    settings.PASSWORD_RESET_LIMIT_PER_IP = settings.PASSWORD_RESET_LIMIT_PER_ACCOUNT = 1_000
    _last_writes.clear()
    clients = _clients(world)
    table = load_table()
    observed: dict[tuple[str, str], tuple[str, ...]] = {}
    side_effects, leaks, bad_responses = [], [], []
    for route in all_routes():
        url = url_of(route, world)
        for method in METHODS:
            answers = []
            for role in ROLES:
                answer = request(clients[role], method, url, role=role, world=world)
                answers.append(answer.code)
                bad_responses += [f"{route.name} {method} as {role}: {problem}" for problem in answer.problems]
                if answer.code in REFUSALS and answer.wrote and route.name not in SIGN_OUT:
                    side_effects.append(f"{route.name} {method} as {role}: {answer.code} but wrote {answer.wrote}")
                if role in OTHER_TENANT and route.name not in TOKEN_LINKS:
                    leaks += [f"{route.name} {method} as {role}: {s!r}" for s in world.secrets_of_a if s in answer.body]
            observed[(route.name, method)] = tuple(answers)

    missing = {cell: answers for cell, answers in observed.items() if cell not in table}
    wrong = {cell: answers for cell, answers in observed.items() if cell in table and table[cell] != answers}
    stale = sorted({route for route, _ in table} - {route for route, _ in observed})
    print(f"\nauthorization matrix: {len(observed)} route-methods x {len(ROLES)} roles = {len(observed) * len(ROLES)}")
    assert not missing, "routes without an entry in the table (review, then add):\n" + format_rows(missing)
    assert not wrong, (
        "answers that differ from the table (the table's rows first):\n"
        + format_rows({cell: table[cell] for cell in wrong})
        + "\nobserved:\n"
        + format_rows(wrong)
    )
    assert not stale, f"entries for routes that no longer exist: {stale}"
    assert not side_effects, "refused requests that changed the database:\n" + "\n".join(side_effects)
    assert not leaks, "another tenant saw organization A's data:\n" + "\n".join(leaks)
    assert not bad_responses, "responses missing a security header or naming software:\n" + "\n".join(bad_responses)


# --- other tenants -------------------------------------------------------------------------------------------------

# Routes whose URL names an object that belongs to one organization.
TENANT_ROUTES = ("apikeys:roll", "apikeys:revoke", "accounts:member_remove", "accounts:invitation_revoke")


def test_the_tenant_routes_are_every_route_naming_an_organizations_object():
    """Console routes name organizations on purpose and are staff-only (404 to everyone else, in the table)."""
    with_ids = {
        route.name
        for route in all_routes()
        if re.search(r"<int:\w+_id>", route.pattern) and not route.name.startswith(("console:", "admin"))
    }
    assert with_ids == set(TENANT_ROUTES)


@pytest.mark.parametrize("route_name", TENANT_ROUTES)
def test_another_tenant_gets_for_organization_a_s_objects_exactly_what_it_gets_for_missing_ones(world, route_name):
    """404 on every method the route accepts, and no other answer that could tell "exists" from "does not"."""
    route = next(route for route in all_routes() if route.name == route_name)
    clients = _clients(world)
    for role in OTHER_TENANT:
        for method in METHODS:
            real = request(clients[role], method, url_of(route, world), role=role, world=world)
            fake = request(clients[role], method, url_of(route, world, missing=True), role=role, world=world)
            assert real.code == fake.code, (role, method)
            assert real.code in {"404", "405"}, (role, method, real.code)
            assert not real.wrote
        assert request(clients[role], "POST", url_of(route, world), role=role, world=world).code == "404"


# --- CSRF ------------------------------------------------------------------------------------------------------------

# The only routes that take unsafe methods without a CSRF token: none of them reads the session cookie.
CSRF_EXEMPT = {
    "api:models": "bearer keys, never cookies",
    "api:predict": "bearer keys, never cookies",
    "api:usage": "bearer keys, never cookies",
    "^v1/": "the API's JSON 404 for any method",
    "v2-server-metadata": "the Open Inference Protocol's keyless probes read no cookie",
    "v2:server-live": "the Open Inference Protocol's keyless probes read no cookie",
    "v2:server-ready": "the Open Inference Protocol's keyless probes read no cookie",
    "v2:model-metadata": "bearer keys, never cookies",
    "v2:version-metadata": "bearer keys, never cookies",
    "v2:model-ready": "bearer keys, never cookies",
    "v2:version-ready": "bearer keys, never cookies",
    "v2:infer": "bearer keys, never cookies",
    "v2:version-infer": "bearer keys, never cookies",
    "^v2/": "the Open Inference Protocol's JSON 404 for any method",
    "payments:stripe-webhook": "Stripe signs the raw body; it cannot send a token",
}


def test_no_signed_in_unsafe_request_without_a_csrf_token_reaches_a_view(world):
    """The matrix runs without CSRF checks to reach the views' own rules; here they are on: a signed-in owner's
    POST, PUT, PATCH or DELETE without a token is refused everywhere but the routes listed above."""
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(world.users["owner_a"], backend="accounts.backends.EmailBackend")
    _last_writes.clear()
    reached = []
    for route in all_routes():
        url = url_of(route, world)
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            answer = request(client, method, url, role="owner_a", world=world)
            refused = answer.code == "403" and "Your form expired" in answer.body
            if refused == (route.name in CSRF_EXEMPT):
                reached.append(f"{route.name} {method}: {answer.code}")
            assert not (refused and answer.wrote)
    assert not reached, "\n".join(reached)
