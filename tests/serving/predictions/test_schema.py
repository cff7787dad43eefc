"""The OpenAPI document is valid, served, and describes exactly the /v1 routes of the URLconf."""

import re

import orjson
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from openapi_spec_validator import validate

from serving.predictions.schema import openapi_spec


def _v1_routes(resolver: URLResolver, prefix: str = "") -> set[tuple[str, str]]:
    found = set()
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found |= _v1_routes(entry, route)
        elif isinstance(entry, URLPattern) and route.startswith("v1/") and not route.startswith("^"):
            found.add(("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route), entry.name))
    return found


def test_the_document_is_valid_openapi_3_1():
    validate(openapi_spec())


def test_the_document_lists_every_v1_route_and_nothing_else():
    routes = {path for path, _ in _v1_routes(get_resolver())}
    assert routes == set(openapi_spec()["paths"])


def test_the_document_is_served_without_a_key(db):
    response = Client().get("/api/openapi.json")
    assert response.status_code == 200
    assert orjson.loads(response.content)["paths"].keys() == openapi_spec()["paths"].keys()
