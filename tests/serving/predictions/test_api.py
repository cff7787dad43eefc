"""The /v1 API through Django's test client: routing by tier, every error code, defenses, and the query log."""

import numpy as np
import orjson
import pytest
from django.test import Client

from apikeys.models import ApiKey
from apikeys.services import apikey_revoke, apikeys_freeze_for_organization
from serving.defenses import softmax
from serving.predictions.models import QueryLog
from serving.predictions.querylog import querylog_flush
from serving.registry.selectors import artifact_dir
from tests.factories import OrganizationFactory, member, raw_key_for
from tests.serving.helpers import DIGITS
from tiers.models import Tier

pytestmark = pytest.mark.usefixtures("registered_digits")

ZERO = [0] * 64


def natural_inputs(n: int, seed: int = 0) -> list[list[float]]:
    from sklearn.datasets import load_digits

    data = load_digits().data
    rows = np.random.default_rng(seed).choice(len(data), size=n, replace=False)
    return data[rows].tolist()


def organization_and_key_on(tier: str) -> tuple:
    """A new organization on `tier` with a member, and a raw API key of it."""
    organization = member(organization=OrganizationFactory(tier=Tier.objects.get(code=tier))).membership.organization
    return organization, raw_key_for(organization)


def key_on(tier: str) -> str:
    return organization_and_key_on(tier)[1]


def call(method: str, path: str, key: str | None, body: object = None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    client = Client()
    if method == "post":
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        return client.post(
            path, data=data, content_type=extra.pop("content_type", "application/json"), **headers, **extra
        )
    return getattr(client, method)(path, **headers, **extra)


def predict(key: str, inputs: list, model: str = "digits"):
    return call("post", f"/v1/models/{model}/predict", key, {"inputs": inputs})


def error_of(response) -> tuple[int, str]:
    assert response["Content-Type"] == "application/json"
    body = orjson.loads(response.content)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return response.status_code, body["error"]["code"]


def test_models_lists_the_digits_model_with_the_version_that_answers(registered_digits):
    response = call("get", "/v1/models", key_on("free"))

    assert response.status_code == 200
    (model,) = orjson.loads(response.content)["models"]
    # Today's fields, unchanged...
    assert model["id"] == "digits" and model["version"] == registered_digits["defended"].version
    assert model["classes"] == [str(d) for d in range(10)]
    assert {key: model["input"][key] for key in ("shape", "min", "max")} == {"shape": [64], "min": 0.0, "max": 16.0}
    # ...and beside them what the schema says of an input.
    assert model["input"]["kind"] == "image" and model["input"]["step"] == 1.0
    assert model["input"]["image"]["height"] == model["input"]["image"]["width"] == 8
    assert model["input"]["description"] == "an 8x8 image, row by row, intensities 0 to 16"


def test_public_tiers_get_the_defended_model_with_label_and_rounded_confidence(registered_digits):
    for tier, decimals in (("free", 1), ("pro", 2)):
        response = predict(key_on(tier), natural_inputs(5))
        assert response.status_code == 200
        body = orjson.loads(response.content)
        assert body["model"] == "digits" and body["version"] == registered_digits["defended"].version
        assert len(body["predictions"]) == 5
        for prediction in body["predictions"]:
            assert set(prediction) == {"label", "confidence"}
            assert prediction["label"] in [str(d) for d in range(10)]
            assert round(prediction["confidence"], decimals) == prediction["confidence"]


def test_enterprise_gets_the_full_model_with_exact_unperturbed_probabilities(registered_digits, demo_run):
    inputs = natural_inputs(20)
    response = predict(key_on("enterprise"), inputs)

    body = orjson.loads(response.content)
    assert body["version"] == registered_digits["full"].version
    # The served graph's exact probabilities (its float32 logits, the softmax the defenses compute).
    expected = softmax(demo_run.classifier("digits", "full").logits(np.asarray(inputs, dtype=float)))
    for prediction, probabilities in zip(body["predictions"], expected, strict=True):
        assert prediction["probabilities"] == probabilities.tolist()
        assert prediction["label"] == str(int(np.argmax(probabilities)))
        assert prediction["confidence"] == float(probabilities.max())


def test_defended_answers_are_deterministic_per_input_across_keys():
    inputs = natural_inputs(30)
    first = orjson.loads(predict(key_on("pro"), inputs).content)["predictions"]
    second = orjson.loads(predict(key_on("pro"), inputs).content)["predictions"]
    assert first == second


def test_public_labels_mostly_agree_with_the_full_model(demo_run):
    inputs = natural_inputs(300, seed=3)
    labels = [p["label"] for p in orjson.loads(predict_in_batches(key_on("pro"), inputs))]
    full = np.argmax(demo_run.classifier("digits", "full").logits(np.asarray(inputs, dtype=float)), axis=1)
    agreement = np.mean([label == str(f) for label, f in zip(labels, full, strict=True)])
    assert agreement >= 0.9


def predict_in_batches(key: str, inputs: list) -> bytes:
    predictions = []
    for start in range(0, len(inputs), 100):
        predictions += orjson.loads(predict(key, inputs[start : start + 100]).content)["predictions"]
    return orjson.dumps(predictions)


def test_an_image_is_classified_like_the_same_digit_as_inputs():
    import base64
    import io

    from PIL import Image

    row = np.asarray(natural_inputs(1, seed=7)[0]).reshape(8, 8)
    image = Image.fromarray((255 - row * 255 / 16).astype(np.uint8)).resize((80, 80), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    key = key_on("enterprise")
    by_image = call("post", "/v1/models/digits/predict", key, {"image": base64.b64encode(buffer.getvalue()).decode()})
    assert by_image.status_code == 200
    (prediction,) = orjson.loads(by_image.content)["predictions"]
    assert (
        prediction["label"] == orjson.loads(predict(key, [row.reshape(-1).tolist()]).content)["predictions"][0]["label"]
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, (401, "invalid_api_key")),
        ("Bearer", (401, "invalid_api_key")),
        ("Basic dXNlcjpwYXNz", (401, "invalid_api_key")),
        ("Bearer moat_live_short", (401, "invalid_api_key")),
        ("Bearer moat_live_" + "A" * 43, (401, "invalid_api_key")),
    ],
)
def test_missing_malformed_and_unknown_keys_get_401_on_every_endpoint(header, expected):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    client = Client()
    assert error_of(client.get("/v1/models", **extra)) == expected
    assert error_of(client.get("/v1/usage", **extra)) == expected
    assert (
        error_of(client.post("/v1/models/digits/predict", b"{}", content_type="application/json", **extra)) == expected
    )


def test_a_revoked_key_gets_401(organization):
    key = raw_key_for(organization)
    apikey_revoke(api_key=ApiKey.objects.get(organization=organization), actor="test")
    assert error_of(predict(key, [ZERO])) == (401, "invalid_api_key")


def test_a_frozen_key_gets_403_key_frozen_on_every_endpoint_including_usage(
    organization, django_capture_on_commit_callbacks
):
    key = raw_key_for(organization)
    assert predict(key, [ZERO]).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        apikeys_freeze_for_organization(organization_id=organization.pk, actor="abuse:test", reason="extraction")

    from apikeys.cache import apikey_cache_forget_local

    apikey_cache_forget_local()  # what each process does by itself within API_KEY_CACHE_SECONDS
    assert error_of(predict(key, [ZERO])) == (403, "key_frozen")
    assert error_of(call("get", "/v1/models", key)) == (403, "key_frozen")
    assert error_of(call("get", "/v1/usage", key)) == (403, "key_frozen")


def test_a_freeze_reaches_a_serving_process_within_the_cache_period(
    organization, settings, monkeypatch, django_capture_on_commit_callbacks
):
    import apikeys.cache as cache

    key = raw_key_for(organization)
    clock = [1000.0]
    monkeypatch.setattr(cache.time, "monotonic", lambda: clock[0])
    assert predict(key, [ZERO]).status_code == 200
    other_process_copy = dict(cache._local)
    with django_capture_on_commit_callbacks(execute=True):
        apikeys_freeze_for_organization(organization_id=organization.pk, actor="abuse:test", reason="extraction")
    # The freezing process dropped its own copy; another serving process still holds the one it loaded.
    assert error_of(predict(key, [ZERO])) == (403, "key_frozen")
    cache._local.update(other_process_copy)

    clock[0] += settings.API_KEY_CACHE_SECONDS / 2
    assert predict(key, [ZERO]).status_code == 200  # this process's copy is still young
    clock[0] += settings.API_KEY_CACHE_SECONDS
    assert error_of(predict(key, [ZERO])) == (403, "key_frozen")


def test_an_organization_with_no_member_on_the_current_terms_gets_403():
    user = member(accept_terms=False)
    key = raw_key_for(user.membership.organization)
    assert error_of(predict(key, [ZERO])) == (403, "terms_not_accepted")
    assert error_of(call("get", "/v1/models", key)) == (403, "terms_not_accepted")


def test_unknown_model_unknown_path_and_wrong_method(organization):
    key = raw_key_for(organization)
    assert error_of(predict(key, [ZERO], model="resnet")) == (404, "model_not_found")
    assert error_of(call("get", "/v1/nope", key)) == (404, "not_found")
    assert error_of(call("get", "/v1/models/digits/predict/extra", key)) == (404, "not_found")
    wrong = call("get", "/v1/models/digits/predict", key)
    assert error_of(wrong) == (405, "method_not_allowed") and wrong["Allow"] == "POST"
    assert error_of(call("delete", "/v1/usage", key)) == (405, "method_not_allowed")
    assert error_of(call("post", "/v1/models", key, {})) == (405, "method_not_allowed")


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": [[1] * 63]},
        {"inputs": [[17] * 64]},
        {"inputs": [["1"] * 64]},
        {"inputs": []},
        {"inputs": [ZERO] * 11},  # the free tier's max batch is 10
        {"image": "@@@"},
        {"pixels": [ZERO]},
        b'{"inputs": [[NaN]]}',
        b'{"inputs": [[Infinity]]}',
        b"not json",
    ],
)
def test_bad_input_gets_400_invalid_input_and_is_logged(organization, body):
    key = raw_key_for(organization)
    response = call("post", "/v1/models/digits/predict", key, body)
    assert error_of(response) == (400, "invalid_input")
    querylog_flush()
    row = QueryLog.objects.get()
    assert (row.status, row.error_code, row.batch_size) == (400, "invalid_input", 0)


def test_a_body_over_the_cap_gets_413_before_it_is_parsed(organization, settings):
    settings.API_MAX_BODY_BYTES = 1000
    key = raw_key_for(organization)
    response = call("post", "/v1/models/digits/predict", key, {"inputs": [[16] * 64] * 10})
    assert error_of(response) == (413, "payload_too_large")


def test_a_body_that_is_not_json_gets_415(organization):
    key = raw_key_for(organization)
    response = call(
        "post", "/v1/models/digits/predict", key, b"inputs=1", content_type="application/x-www-form-urlencoded"
    )
    assert error_of(response) == (415, "unsupported_media_type")


def test_a_key_in_the_query_string_is_refused(organization):
    key = raw_key_for(organization)
    response = Client().get(f"/v1/models?api_key={key}", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert error_of(response) == (400, "invalid_input")
    assert "Authorization header" in orjson.loads(response.content)["error"]["message"]


def test_error_messages_name_no_framework_version_or_internals(organization):
    key = raw_key_for(organization)
    bodies = [
        predict(key, [[1] * 3]),
        predict(key, [ZERO], model="x"),
        call("get", "/v1/nope", key),
        call("get", "/v1/models/digits/predict", key),
    ]
    for response in bodies:
        text = response.content.decode().lower()
        for word in ("django", "python", "numpy", "traceback", "mlp", "layer", "hidden", "weights"):
            assert word not in text


def test_every_prediction_is_logged_with_the_evidence_abuse_detection_needs(organization, registered_digits):
    key = raw_key_for(organization)
    inputs = natural_inputs(3)
    response = predict(key, inputs)
    answers = orjson.loads(response.content)["predictions"]

    querylog_flush()

    row = QueryLog.objects.get()
    api_key = ApiKey.objects.get(organization=organization)
    assert str(row.request_id) == response["X-Request-Id"]
    assert (row.organization_id, row.api_key_id, row.tier_code, row.endpoint) == (
        organization.pk,
        api_key.pk,
        "free",
        "predict",
    )
    assert (row.model_slug, row.model_version, row.variant) == (
        "digits",
        registered_digits["defended"].version,
        "defended",
    )
    assert (row.status, row.batch_size, row.client_ip, row.user_agent) == (200, 3, "127.0.0.1", "")
    assert bytes(row.inputs) == DIGITS.codes(np.asarray(inputs, dtype=float)).tobytes() and row.input_row_bytes == 64
    assert row.labels == [a["label"] for a in answers]
    assert row.confidences == [a["confidence"] for a in answers]
    assert len(row.watermarked) == 3 and len(row.clean_labels) == 3
    assert 0 < row.latency_us < 5_000_000


def test_usage_reports_only_the_callers_organization(organization, other_owner):
    mine = raw_key_for(organization)
    theirs = raw_key_for(other_owner.membership.organization)
    predict(mine, [ZERO, ZERO])
    for _ in range(3):
        predict(theirs, [ZERO])
    querylog_flush()

    body = orjson.loads(call("get", "/v1/usage", mine).content)

    assert body["tier"] == "free"
    assert body["usage"] == {"requests": 1, "predictions": 2}
    assert body["limits"]["requests_per_minute"] == 60 and body["limits"]["max_batch_size"] == 10
    other = orjson.loads(call("get", "/v1/usage", theirs).content)
    assert other["usage"] == {"requests": 3, "predictions": 3}


def test_switching_the_active_version_changes_the_answering_version_without_a_restart(
    organization, registered_digits, monkeypatch, django_capture_on_commit_callbacks
):
    from serving.predictions import runtime
    from serving.registry.services import version_activate, version_register

    key = raw_key_for(organization)
    assert orjson.loads(predict(key, [ZERO]).content)["version"] == registered_digits["defended"].version
    current = registered_digits["defended"]
    newer = version_register(
        model=current.model,
        variant="defended",
        version="2099.1",
        onnx_bytes=(artifact_dir() / current.artifact_path).read_bytes(),
        output_name=current.output_name,
        metrics=current.metrics,
        provenance=current.provenance,
        activate=False,
    )
    with django_capture_on_commit_callbacks(execute=True):
        version_activate(version=newer)
    monkeypatch.setattr(runtime, "_CHECK_SECONDS", 0.0)

    assert orjson.loads(predict(key, [ZERO]).content)["version"] == "2099.1"


def test_an_organization_moved_to_enterprise_gets_the_full_model(
    organization, registered_digits, django_capture_on_commit_callbacks
):
    key = raw_key_for(organization)
    assert orjson.loads(predict(key, [ZERO]).content)["version"] == registered_digits["defended"].version
    organization.tier = Tier.objects.get(code="enterprise")
    with django_capture_on_commit_callbacks(execute=True):
        organization.save()  # as the admin does: the save drops the key snapshots
    from apikeys.cache import apikey_cache_forget_local

    apikey_cache_forget_local()
    assert orjson.loads(predict(key, [ZERO]).content)["version"] == registered_digits["full"].version


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_any_method_on_an_unknown_api_path_is_a_json_404(method, organization):
    key = raw_key_for(organization)
    client = Client(enforce_csrf_checks=True)
    response = getattr(client, method)("/v1/models/digits/predict/", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert error_of(response) == (404, "not_found")


def test_a_frozen_key_gets_403_even_with_the_wrong_method(organization, django_capture_on_commit_callbacks):
    key = raw_key_for(organization)
    with django_capture_on_commit_callbacks(execute=True):
        apikeys_freeze_for_organization(organization_id=organization.pk, actor="abuse:test", reason="x")
    assert error_of(call("get", "/v1/models/digits/predict", key)) == (403, "key_frozen")


# --- a second model, of another kind ----------------------------------------------------------------------------


def test_every_served_model_is_listed_with_what_its_input_is(registered_digits, registered_breast_cancer):
    body = orjson.loads(call("get", "/v1/models", key_on("pro")).content)

    assert [m["id"] for m in body["models"]] == ["breast-cancer", "digits"]
    cancer = body["models"][0]
    assert cancer["classes"] == ["malignant", "benign"]
    assert cancer["version"] == registered_breast_cancer["defended"].version
    assert cancer["input"]["shape"] == [30] and cancer["input"]["kind"] == "tabular"
    assert cancer["input"]["min"] == 0.0 and cancer["input"]["max"][:2] == [50.0, 100.0]  # per-feature bounds
    assert cancer["input"]["features"][0] == {"name": "mean radius", "min": 0.0, "max": 50.0, "step": 0.01}
    assert "image" not in cancer["input"]


def test_a_tabular_model_answers_each_tier_in_its_shape(registered_breast_cancer, demo_run):
    from serving.ml.breast_cancer import load_split

    rows = load_split().X_test[:4].tolist()
    for tier in ("free", "pro", "enterprise"):
        response = predict(key_on(tier), rows, model="breast-cancer")
        assert response.status_code == 200
        predictions = orjson.loads(response.content)["predictions"]
        assert [set(p) for p in predictions] == [
            {"label", "confidence", "probabilities"} if tier == "enterprise" else {"label", "confidence"}
        ] * 4
    # Enterprise: the full model's exact probabilities for the inputs on the schema's grid (what it was asked).
    classifier = demo_run.classifier("breast-cancer", "full")
    exact = softmax(classifier.logits(classifier.schema.values(classifier.schema.codes(np.asarray(rows)))))
    assert [p["probabilities"] for p in predictions] == exact.tolist()


def test_a_tabular_models_refusals_name_the_row_and_the_feature(registered_breast_cancer):
    from serving.ml.breast_cancer import load_split

    row = load_split().X_test[0].tolist()
    key = key_on("pro")
    too_big = [*row[:3], 9_999.0, *row[4:]]

    response = predict(key, [row, too_big], model="breast-cancer")
    assert error_of(response) == (400, "invalid_input")
    assert orjson.loads(response.content)["error"]["message"] == (
        "inputs[1]: feature 'mean area' is 9999, outside its allowed 0 to 4000."
    )
    short = orjson.loads(predict(key, [row[:29]], model="breast-cancer").content)["error"]["message"]
    assert short.startswith("inputs[0] has 29 values; each input needs 30 (the features mean radius, mean texture,")


def test_a_model_with_no_defended_version_is_served_full_to_the_public_tiers_through_their_defenses(
    registered_breast_cancer, django_capture_on_commit_callbacks
):
    from serving.registry.models import ModelVersion

    ModelVersion.objects.filter(pk=registered_breast_cancer["defended"].pk).update(is_active=False)
    from serving.ml.breast_cancer import load_split

    rows = load_split().X_test[:2].tolist()

    body = orjson.loads(predict(key_on("free"), rows, model="breast-cancer").content)

    assert body["version"] == registered_breast_cancer["full"].version
    assert [set(p) for p in body["predictions"]] == [{"label", "confidence"}] * 2  # the free tier's shape
    assert all(round(p["confidence"], 1) == p["confidence"] for p in body["predictions"])
    querylog_flush()
    records = QueryLog.objects.filter(model_slug="breast-cancer")
    assert [(r.variant, r.batch_size, r.input_row_bytes) for r in records] == [("full", 2, 60)]


def test_a_throttled_organization_is_answered_the_label_only_until_the_throttle_is_lifted(
    django_capture_on_commit_callbacks,
):
    from serving.quotas.services import organization_set_throttle_factor

    organization, key = organization_and_key_on("enterprise")
    inputs = natural_inputs(4, seed=3)
    full = orjson.loads(predict(key, inputs).content)["predictions"]
    assert all(set(answer) == {"label", "confidence", "probabilities"} for answer in full)

    with django_capture_on_commit_callbacks(execute=True):
        organization_set_throttle_factor(organization=organization, factor=0.25, reason="risk", actor="abuse jobs")
    response = predict(key, inputs)

    # What it keeps receiving while it is watched teaches a copy as little as the API can: the labels alone.
    assert response.status_code == 200 and response["X-Moat-Answers"] == "label-only"
    assert orjson.loads(response.content)["predictions"] == [{"label": answer["label"]} for answer in full]
    querylog_flush()
    # The record keeps the confidence the tier serves, which the abuse jobs go on scoring.
    assert QueryLog.objects.order_by("created_at", "pk").last().confidences == [a["confidence"] for a in full]

    with django_capture_on_commit_callbacks(execute=True):
        organization_set_throttle_factor(organization=organization, factor=1.0, reason="", actor="abuse jobs")
    restored = predict(key, inputs)
    assert "X-Moat-Answers" not in restored and orjson.loads(restored.content)["predictions"] == full
