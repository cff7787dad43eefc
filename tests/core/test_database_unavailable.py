"""Pages while PostgreSQL is unreachable: 503 with Retry-After, the site's own page (JSON under /v1/), rendered
without the signed-in user (whose session is in the database) and naming no software; never a 500 page."""

import orjson
import pytest
from django.test import Client
from django.urls import include, path

from accounts.models import User
from tests.conftest import signed_in
from tests.outages import postgres_unreachable

pytestmark = pytest.mark.django_db


def needs_the_database(request):
    User.objects.count()


# This module is also the URLconf of the last tests: the real routes plus a view under /v1/ that reads PostgreSQL.
urlpatterns = [path("v1/needs-the-database/", needs_the_database), path("", include("config.urls"))]
handler500 = "core.views.server_error"


def test_a_signed_in_page_answers_the_sites_503_page(owner):
    client = signed_in(owner)
    client.raise_request_exception = False
    assert client.get("/account/").status_code == 200

    with postgres_unreachable():
        response = client.get("/account/")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"] == "text/html; charset=utf-8"
    body = response.content.decode()
    assert "Briefly unavailable" in body and "The service is briefly unavailable. Retry in a few seconds." in body
    assert owner.email not in body  # rendered without the session's user
    for word in ("OperationalError", "Traceback", "Django", "psycopg", "Connection refused"):
        assert word not in body
    assert response["X-Frame-Options"] == "DENY" and "Content-Security-Policy" in response


def test_the_admin_answers_503_too(admin_user):
    client = signed_in(admin_user)
    client.raise_request_exception = False

    with postgres_unreachable():
        response = client.get("/admin/")

    assert (response.status_code, response["Retry-After"]) == (503, "5")


def test_an_api_path_outside_the_api_views_answers_json_503(settings):
    settings.ROOT_URLCONF = __name__
    client = Client(raise_request_exception=False)

    with postgres_unreachable():
        response = client.get("/v1/needs-the-database/")

    assert (response.status_code, response["Retry-After"]) == (503, "5")
    assert orjson.loads(response.content) == {
        "error": {
            "code": "service_unavailable",
            "message": "The service is briefly unavailable. Retry in a few seconds.",
        }
    }


def test_other_crashes_are_still_500(settings):
    settings.ROOT_URLCONF = "tests.core.failing_urls"
    response = Client(raise_request_exception=False).get("/v1/boom/")
    assert response.status_code == 500
    assert "Retry-After" not in response
