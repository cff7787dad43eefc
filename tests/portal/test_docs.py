"""The portal's API page describes every served model from the registry: its input, classes, who answers each plan
and an example body; no text is written per model."""

import html
import re

import orjson
import pytest
from django.test import Client

from serving.registry.models import ModelVersion
from tests.serving.predictions.test_api import key_on

pytestmark = pytest.mark.django_db


def test_the_api_page_has_a_section_per_served_model_from_its_schema(registered_digits, registered_breast_cancer):
    page = Client().get("/docs/").content.decode()

    assert 'id="model-digits"' in page and 'id="model-breast-cancer"' in page
    assert "an 8x8 image, row by row, intensities 0 to 16 (64 values; nested lists of shape 8x8 work too)" in page
    assert "Also takes a picture as <code>image</code>" in page
    # The tabular model lists its features with their bounds and steps, and names its classes.
    assert '<code>mean radius</code></td><td class="num">0.0</td><td class="num">50.0</td>' in page
    assert "<code>malignant</code>, <code>benign</code>" in page
    assert page.count("a lighter, defended model on the Free and Pro plans") == 2
    # Example bodies come from the models' own reference data: a real input, as long as the schema says.
    example = re.search(
        r'id="model-breast-cancer".*?<pre><code>(\{&quot;inputs&quot;: ?\[\[.*?\]\]\})</code>', page, re.S
    )
    assert example and example.group(1).count(",") == 29


def test_the_page_says_when_the_public_plans_are_answered_by_the_full_model(registered_breast_cancer):
    ModelVersion.objects.filter(pk=registered_breast_cancer["defended"].pk).update(is_active=False)

    page = Client().get("/docs/").content.decode()

    assert "the full model on every plan; Free and Pro answers go through output defenses" in page


def test_the_page_still_explains_the_api_when_no_model_is_served(db):
    page = Client().get("/docs/")

    assert page.status_code == 200
    assert "No model is being served right now." in page.content.decode()


def test_the_page_documents_the_python_client_and_an_open_inference_protocol_call_that_works(registered_digits):
    page = html.unescape(Client().get("/docs/").content.decode())
    assert 'id="python-client"' in page and "pip install ./clients/python" in page
    assert 'moat.predict("digits", [' in page and "RateLimitedError" in page
    # The /v2 example's body, as the page prints it, is answered.
    body = re.search(r"-d '(\{\"inputs\": \[\{\"name\": \"input\".*?\})'", page, re.S).group(1)
    answer = Client().post(
        "/v2/models/digits/infer", data=body, content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key_on('pro')}",
    )  # fmt: skip
    assert answer.status_code == 200, answer.content
    assert orjson.loads(answer.content)["outputs"][0]["name"] == "label"
    assert 'triton.InferInput("input", [1, 64], "FP32")' in page
