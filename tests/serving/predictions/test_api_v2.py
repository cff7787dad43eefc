"""The Open Inference Protocol's routes through Django's test client: the same pipeline, tiers, errors and query log
as /v1, in the protocol's shapes."""

import numpy as np
import orjson
import pytest
from django.test import Client

from apikeys.cache import apikey_cache_forget_local
from apikeys.services import apikeys_freeze_for_organization
from serving.predictions.models import QueryLog
from serving.predictions.querylog import querylog_flush
from tests.factories import raw_key_for
from tests.serving.predictions.test_api import key_on, natural_inputs, organization_and_key_on, predict
from tiers.cache import tier_cache_clear
from tiers.models import Tier

pytestmark = pytest.mark.usefixtures("registered_digits")


def v2(method: str, path: str, key: str | None = None, body: object = None, **headers):
    extra = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    if "content_type" in headers:
        extra["content_type"] = headers.pop("content_type")
    extra.update({f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()})
    client = Client()
    if method == "post":
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        return client.post(path, data=data, content_type=extra.pop("content_type", "application/json"), **extra)
    return getattr(client, method)(path, **extra)


def infer_body(rows: list, *, datatype: str = "FP32", **fields) -> dict:
    n = len(rows)
    flat = [value for row in rows for value in row]
    return {"inputs": [{"name": "input", "shape": [n, 64], "datatype": datatype, "data": flat}], **fields}


def error_of(response) -> tuple[int, str]:
    body = orjson.loads(response.content)
    assert set(body) == {"error", "code"} and isinstance(body["error"], str) and body["error"]
    return response.status_code, body["code"]


def test_health_and_server_metadata_are_public_and_name_no_software(registered_digits):
    assert orjson.loads(v2("get", "/v2/health/live").content) == {"live": True}
    ready = v2("get", "/v2/health/ready")
    assert ready.status_code == 200 and orjson.loads(ready.content) == {"ready": True}
    metadata = orjson.loads(v2("get", "/v2").content)
    assert metadata == {"name": "moat", "version": "2", "extensions": ["classification", "binary_tensor_data"]}


def test_model_metadata_shows_the_version_and_outputs_of_the_callers_tier(registered_digits):
    free = orjson.loads(v2("get", "/v2/models/digits", key_on("free")).content)
    assert free["name"] == "digits" and free["versions"] == [registered_digits["defended"].version]
    assert free["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert [output["name"] for output in free["outputs"]] == ["label", "confidence"]

    enterprise = orjson.loads(v2("get", "/v2/models/digits", key_on("enterprise")).content)
    assert enterprise["versions"] == [registered_digits["full"].version]
    assert enterprise["outputs"][-1] == {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}


def test_the_tier_decides_the_variant_and_any_other_version_is_not_found(registered_digits):
    served = registered_digits["defended"].version
    free = key_on("free")
    assert v2("get", f"/v2/models/digits/versions/{served}", free).status_code == 200
    assert orjson.loads(v2("get", f"/v2/models/digits/versions/{served}/ready", free).content) == {
        "name": "digits", "ready": True,
    }  # fmt: skip
    # Naming a version picks no variant: the full model's version string still answers free with the defended one.
    rows = natural_inputs(5, seed=8)
    named = v2("post", f"/v2/models/digits/versions/{registered_digits['full'].version}/infer", free, infer_body(rows))
    unnamed = v2("post", "/v2/models/digits/infer", free, infer_body(rows))
    assert orjson.loads(named.content)["outputs"] == orjson.loads(unnamed.content)["outputs"]
    assert "probabilities" not in {output["name"] for output in orjson.loads(named.content)["outputs"]}
    for path in ("/v2/models/digits/versions/0", "/v2/models/digits/versions/0/ready"):
        assert error_of(v2("get", path, free)) == (404, "model_not_found")
    response = v2("post", "/v2/models/digits/versions/0/infer", free, infer_body(rows))
    assert error_of(response) == (404, "model_not_found")


def test_infer_answers_each_tier_exactly_as_v1_predict(registered_digits):
    rows = natural_inputs(7, seed=2)
    for tier in ("free", "pro", "enterprise"):
        key = key_on(tier)
        ours = v2("post", "/v2/models/digits/infer", key, infer_body(rows, id="req-7"))
        theirs = orjson.loads(predict(key, rows).content)["predictions"]
        assert ours.status_code == 200, ours.content
        assert ours["X-RateLimit-Limit"] and ours["X-Request-Id"]
        body = orjson.loads(ours.content)
        assert body["id"] == "req-7" and body["model_name"] == "digits"
        outputs = {output["name"]: output for output in body["outputs"]}
        assert outputs["label"] == {
            "name": "label", "datatype": "BYTES", "shape": [7], "data": [p["label"] for p in theirs],
        }  # fmt: skip
        assert outputs["confidence"]["data"] == [p["confidence"] for p in theirs]
        if tier == "enterprise":
            assert outputs["probabilities"]["shape"] == [7, 10]
            assert np.reshape(outputs["probabilities"]["data"], (7, 10)).tolist() == [
                p["probabilities"] for p in theirs
            ]
        else:
            assert set(outputs) == {"label", "confidence"}


def test_requested_outputs_and_classification_follow_the_tiers_top_k(registered_digits):
    rows = natural_inputs(3, seed=4)
    enterprise = v2(
        "post", "/v2/models/digits/infer", key_on("enterprise"),
        infer_body(rows, outputs=[{"name": "probabilities", "parameters": {"classification": 3}}]),
    )  # fmt: skip
    (output,) = orjson.loads(enterprise.content)["outputs"]
    assert output["shape"] == [3, 3] and output["datatype"] == "BYTES"
    first = [entry.split(":") for entry in output["data"][:3]]
    assert [float(value) for value, _, _ in first] == sorted((float(value) for value, _, _ in first), reverse=True)
    assert all(index == label for _, index, label in first)  # the digits' labels are their indices

    # A public tier's top-k is 1: asking for 5 gets the one it shows, its rounded confidence with it.
    free = v2(
        "post", "/v2/models/digits/infer", key_on("free"),
        infer_body(rows, outputs=[{"name": "label", "parameters": {"classification": 5}}]),
    )  # fmt: skip
    (output,) = orjson.loads(free.content)["outputs"]
    assert output["shape"] == [3, 1]
    assert all(round(float(entry.split(":")[0]), 1) == float(entry.split(":")[0]) for entry in output["data"])

    refused = v2("post", "/v2/models/digits/infer", key_on("free"),
                 infer_body(rows, outputs=[{"name": "probabilities"}]))  # fmt: skip
    status, code = error_of(refused)
    assert (status, code) == (400, "invalid_input") and "label, confidence" in orjson.loads(refused.content)["error"]


def test_binary_tensor_data_is_read_like_json_data(registered_digits):
    rows = natural_inputs(4, seed=5)
    key = key_on("pro")
    raw = np.asarray(rows, dtype="<f4").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "input", "shape": [4, 64], "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}
            ]
        }
    )
    binary = v2("post", "/v2/models/digits/infer", key, header + raw, content_type="application/octet-stream",
                inference_header_content_length=str(len(header)))  # fmt: skip
    as_json = v2("post", "/v2/models/digits/infer", key, infer_body(rows))
    assert binary.status_code == 200, binary.content
    assert orjson.loads(binary.content)["outputs"] == orjson.loads(as_json.content)["outputs"]

    short = v2("post", "/v2/models/digits/infer", key, header + raw[:-4], content_type="application/octet-stream",
               inference_header_content_length=str(len(header)))  # fmt: skip
    assert error_of(short) == (400, "invalid_input")
    json_header = orjson.dumps(infer_body(rows))
    stray = v2("post", "/v2/models/digits/infer", key, json_header + raw, content_type="application/octet-stream",
               inference_header_content_length=str(len(json_header)))  # fmt: skip
    assert error_of(stray) == (400, "invalid_input") and "no input says" in orjson.loads(stray.content)["error"]


def test_an_image_model_takes_its_image_shape_too(registered_digits):
    rows = natural_inputs(2, seed=6)
    nested = {"inputs": [{"name": "input", "shape": [2, 8, 8], "datatype": "FP64", "data": rows}]}
    key = key_on("pro")
    answer = v2("post", "/v2/models/digits/infer", key, nested)
    assert answer.status_code == 200, answer.content
    assert (
        orjson.loads(answer.content)["outputs"]
        == orjson.loads(v2("post", "/v2/models/digits/infer", key, infer_body(rows)).content)["outputs"]
    )


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "not valid JSON"),
        ({"inputs": []}, "one input tensor"),
        ({"inputs": [{"name": "input", "shape": [1, 63], "datatype": "FP32", "data": [0] * 63}]}, "[N, 64]"),
        ({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "BYTES", "data": ["a"] * 64}]}, "datatype"),
        ({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0] * 60}]}, "holds 60 values"),
        ({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [99] * 64}]}, "outside"),
        ({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "INT32", "data": [0.5] * 64}]}, "whole numbers"),
        ({"inputs": [{"name": "input", "shape": [0, 64], "datatype": "FP32", "data": []}]}, "no input"),
        ({"inputs": [{"name": "input", "shape": [101, 64], "datatype": "FP32", "data": [0] * 6464}]}, "at most"),
        ({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [True] * 64}]}, "only numbers"),
        (
            {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0] * 63 + [False]}]},
            "only numbers",
        ),
        ({"inputs": [{"name": "input", "shape": [1, 64], "datatype": {}, "data": [0] * 64}]}, "datatype"),
        ({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0] * 64}], "id": None}, '"id"'),
        ({"inputs": [{"shape": [1, 64], "datatype": "FP32", "data": [0] * 64}]}, '"name"'),
        (
            {"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": [0] * 64}], "outputs": None},
            "outputs",
        ),
        ({"inputs": [{"name": "input", "shape": [-1, 64], "datatype": "FP32", "data": [0] * 64}]}, "whole numbers"),
        ({"inputs": [], "extra": 1}, "Unknown field"),
    ],
)
def test_bad_requests_get_the_protocols_error_with_moats_code(body, words):
    response = v2("post", "/v2/models/digits/infer", key_on("pro"), body)
    assert error_of(response) == (400, "invalid_input")
    assert words in orjson.loads(response.content)["error"]


def test_v1s_statuses_in_the_protocols_shape(registered_digits):
    path = "/v2/models/digits/infer"
    assert error_of(v2("post", path, None, infer_body(natural_inputs(1)))) == (401, "invalid_api_key")
    assert error_of(v2("post", "/v2/models/nope/infer", key_on("pro"), infer_body(natural_inputs(1))))[0] == 404
    assert error_of(v2("get", path, key_on("pro"))) == (405, "method_not_allowed")
    assert error_of(v2("post", path, key_on("pro"), b"{}", content_type="text/plain")) == (
        415, "unsupported_media_type",
    )  # fmt: skip
    assert error_of(v2("post", path, key_on("pro"), b"{}", content_encoding="gzip")) == (415, "unsupported_media_type")
    assert error_of(v2("get", "/v2/no/such/route")) == (404, "not_found")
    assert error_of(v2("post", path, key_on("pro"), b"x" * (3 * 1024 * 1024))) == (413, "payload_too_large")


def test_a_quota_counts_rows_and_a_frozen_key_is_refused(organization, django_capture_on_commit_callbacks):
    Tier.objects.filter(code=organization.tier.code).update(requests_per_minute=5)
    tier_cache_clear()
    key = raw_key_for(organization)
    first = v2("post", "/v2/models/digits/infer", key, infer_body(natural_inputs(4)))
    assert first.status_code == 200 and first["X-RateLimit-Remaining"] == "1"
    refused = v2("post", "/v2/models/digits/infer", key, infer_body(natural_inputs(2)))
    assert error_of(refused) == (429, "rate_limited") and int(refused["Retry-After"]) > 0

    with django_capture_on_commit_callbacks(execute=True):
        apikeys_freeze_for_organization(organization_id=organization.pk, actor="abuse:test", reason="extraction")
    apikey_cache_forget_local()
    assert error_of(v2("post", "/v2/models/digits/infer", key, infer_body(natural_inputs(1)))) == (403, "key_frozen")
    assert error_of(v2("get", "/v2/models/digits", key)) == (403, "key_frozen")


def test_inferences_are_logged_and_billed_as_predictions(registered_digits):
    key = key_on("pro")
    v2("post", "/v2/models/digits/infer", key, infer_body(natural_inputs(5)))
    querylog_flush()
    (record,) = QueryLog.objects.filter(endpoint="predict")
    assert record.batch_size == 5 and record.status == 200 and record.model_slug == "digits"


def test_a_throttled_organization_is_answered_the_label_alone_whatever_outputs_it_asks_for(
    django_capture_on_commit_callbacks,
):
    from serving.quotas.services import organization_set_throttle_factor

    organization, key = organization_and_key_on("enterprise")
    rows = natural_inputs(4, seed=3)
    asked = [{"name": "probabilities", "parameters": {"classification": 3}}, {"name": "confidence"}]
    full = orjson.loads(v2("post", "/v2/models/digits/infer", key, infer_body(rows)).content)["outputs"]
    assert [output["name"] for output in full] == ["label", "confidence", "probabilities"]

    with django_capture_on_commit_callbacks(execute=True):
        organization_set_throttle_factor(organization=organization, factor=0.25, reason="risk", actor="abuse jobs")
    for body in (infer_body(rows), infer_body(rows, outputs=asked)):
        response = v2("post", "/v2/models/digits/infer", key, body)
        assert response.status_code == 200 and response["X-Moat-Answers"] == "label-only"
        answer = orjson.loads(response.content)
        assert answer["outputs"] == [full[0]] and answer["parameters"] == {"answers": "label-only"}


def test_classification_strings_carry_the_confidence_the_other_outputs_carry():
    rows = natural_inputs(2, seed=9)
    body = infer_body(rows, outputs=[{"name": "probabilities", "parameters": {"classification": 1}},
                                     {"name": "probabilities"}])  # fmt: skip
    ranked, probabilities = orjson.loads(v2("post", "/v2/models/digits/infer", key_on("enterprise"), body).content)[
        "outputs"
    ]
    best = np.reshape(probabilities["data"], (2, 10)).max(axis=1).tolist()
    assert [float(entry.split(":")[0]) for entry in ranked["data"]] == best
