"""The OpenAPI document is valid, served, and describes exactly the /v1 and /v2 routes of the URLconf, each model's
routes once per served model, from the registry."""

import re

import orjson
import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from openapi_spec_validator import validate

from serving.predictions.schema import openapi_spec


def _api_routes(resolver: URLResolver, prefix: str = "") -> set[tuple[str, str]]:
    """The /v1 and /v2 routes of the URLconf, their arguments as {name}."""
    found = set()
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found |= _api_routes(entry, route)
        elif isinstance(entry, URLPattern) and route.startswith(("v1/", "v2")) and not route.startswith("^"):
            found.add(("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route), entry.name))
    return found


pytestmark = pytest.mark.usefixtures("registered_digits", "registered_breast_cancer")


def test_the_document_is_valid_openapi_3_1():
    validate(openapi_spec())


def test_the_document_lists_every_api_route_and_nothing_else_with_each_model_route_per_served_model():
    routes = set()
    for path, _ in _api_routes(get_resolver()):
        model_argument = next((name for name in ("{model_id}", "{model_name}") if name in path), None)
        if model_argument:
            routes |= {path.replace(model_argument, slug) for slug in ("breast-cancer", "digits")}
        else:
            routes.add(path)
    assert routes == set(openapi_spec()["paths"])
    assert "/v2/models/digits/versions/{version}/infer" in routes


def test_each_models_path_describes_its_own_input_classes_and_an_example_from_its_reference_data():
    document = openapi_spec()
    schemas = document["components"]["schemas"]

    digits = document["paths"]["/v1/models/digits/predict"]["post"]
    body = digits["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/DigitsRequest"}
    inputs, picture = schemas["DigitsRequest"]["oneOf"]
    assert inputs["properties"]["inputs"]["items"]["maxItems"] == 64 and picture["required"] == ["image"]
    assert len(body["example"]["inputs"][0]) == 64 and all(isinstance(v, int) for v in body["example"]["inputs"][0])
    assert schemas["DigitsPrediction"]["properties"]["label"]["enum"] == [str(d) for d in range(10)]

    cancer = schemas["BreastCancerRequest"]  # tabular: numbers only, each feature with its own bounds
    row = cancer["properties"]["inputs"]["items"]
    assert row["prefixItems"][0] == {"type": "number", "minimum": 0.0, "maximum": 50.0, "title": "mean radius"}
    assert len(row["prefixItems"]) == 30 and "oneOf" not in cancer
    assert schemas["BreastCancerPrediction"]["properties"]["label"]["enum"] == ["malignant", "benign"]
    assert "Classes: malignant, benign." in document["paths"]["/v1/models/breast-cancer/predict"]["post"]["description"]


def test_the_document_is_served_without_a_key(db):
    response = Client().get("/api/openapi.json")
    assert response.status_code == 200
    assert orjson.loads(response.content)["paths"].keys() == openapi_spec()["paths"].keys()
