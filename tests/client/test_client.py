"""The official Python client (clients/python) against the real web server: batches split to the plan's maximum,
pictures, every error code as its own exception, retries after Retry-After within the budget, and the `moat`
command."""

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import moat_client
import numpy as np
import pytest
import requests
from moat_client import Moat
from PIL import Image

from apikeys.services import apikeys_freeze_for_organization
from serving.predictions.models import QueryLog
from serving.predictions.querylog import querylog_flush
from serving.quotas.services import organization_set_spend_capped
from tests.factories import OrganizationFactory, member, raw_key_for
from tests.processes import RedisServer, free_port, web_server
from tests.serving.predictions.test_api import natural_inputs
from tiers.models import Tier

pytestmark = pytest.mark.django_db(transaction=True)


def _organization(tier: str, **kwargs):
    return member(organization=OrganizationFactory(tier=Tier.objects.get(code=tier)), **kwargs).membership.organization


@pytest.fixture
def server(registered_digits, tmp_path):
    Tier.objects.update(requests_per_minute=100_000, requests_per_hour=1_000_000, requests_per_day=10_000_000)
    with web_server(log_path=tmp_path / "web.log", extra_env={"API_KEY_CACHE_SECONDS": "0.2"}) as (base_url, _):
        yield base_url


def _direct_labels(base_url: str, key: str, rows: list) -> list[str]:
    answer = requests.post(f"{base_url}/v1/models/digits/predict", json={"inputs": rows},
                           headers={"Authorization": f"Bearer {key}"}, timeout=30)  # fmt: skip
    return [p["label"] for p in answer.json()["predictions"]]


def test_models_usage_and_predictions_split_to_the_plans_batch_size(server):
    key = raw_key_for(_organization("free"))
    moat = Moat(api_key=key, base_url=server)
    (model,) = moat.models()
    assert model.id == "digits" and model.classes == [str(d) for d in range(10)] and model.n_features == 64
    usage = moat.usage()
    assert usage.tier == "free" and usage.max_batch_size == 10

    rows = np.asarray(natural_inputs(25, seed=21))
    predictions = moat.predict("digits", rows)  # 25 rows: three requests of at most 10
    assert len(predictions) == 25
    querylog_flush()
    sent = QueryLog.objects.filter(endpoint="predict", status=200).order_by("created_at")
    assert list(sent.values_list("batch_size", flat=True)) == [10, 10, 5]
    assert [p.label for p in predictions] == _direct_labels(server, key, rows[:10].tolist()) + _direct_labels(
        server, key, rows[10:20].tolist()
    ) + _direct_labels(server, key, rows[20:].tolist())
    assert all(p.probabilities is None and round(p.confidence, 1) == p.confidence for p in predictions)

    enterprise = Moat(api_key=raw_key_for(_organization("enterprise")), base_url=server)
    (full,) = enterprise.predict("digits", rows[:1].tolist())
    assert len(full.probabilities) == 10 and full.label == str(int(np.argmax(full.probabilities)))


def test_predict_image_sends_a_picture(server, tmp_path):
    digit = (np.asarray(natural_inputs(1, seed=3)[0]).reshape(8, 8) * 255 / 16).astype(np.uint8)
    path = tmp_path / "digit.png"
    Image.fromarray(digit, mode="L").save(path)
    moat = Moat(api_key=raw_key_for(_organization("pro")), base_url=server)
    by_path = moat.predict_image("digits", path)
    buffer = io.BytesIO()
    Image.fromarray(digit, mode="L").save(buffer, format="PNG")
    assert by_path.label in [str(d) for d in range(10)] and moat.predict_image("digits", buffer.getvalue()) == by_path


def test_every_error_code_is_its_own_exception(server):
    organization = _organization("pro")
    key = raw_key_for(organization)
    moat = Moat(api_key=key, base_url=server, max_batch_size=100)
    predict_path = "/v1/models/digits/predict"

    with pytest.raises(moat_client.InvalidInputError) as invalid:
        moat.predict("digits", [[99] * 64])
    assert invalid.value.status == 400 and "outside" in invalid.value.message and invalid.value.request_id is None
    with pytest.raises(moat_client.ModelNotFoundError):
        moat.predict("no-such-model", [[0] * 64])
    with pytest.raises(moat_client.MethodNotAllowedError):
        moat.request("GET", predict_path)
    with pytest.raises(moat_client.UnsupportedMediaTypeError):
        moat.request("POST", predict_path, data=b"{}", headers={"Content-Type": "text/plain"})
    with pytest.raises(moat_client.PayloadTooLargeError):
        moat.request("POST", predict_path, data=b"[" * (3 * 1024 * 1024), headers={"Content-Type": "application/json"})
    with pytest.raises(moat_client.NotFoundError):
        moat.request("GET", "/v1/no-such-route")
    with pytest.raises(moat_client.InvalidApiKeyError):
        Moat(api_key="moat_live_" + "x" * 43, base_url=server).models()
    with pytest.raises(moat_client.TermsNotAcceptedError):
        Moat(api_key=raw_key_for(_organization("pro", accept_terms=False)), base_url=server).models()
    # The Open Inference Protocol's error shape is read too.
    with pytest.raises(moat_client.ModelNotFoundError):
        moat.request("GET", "/v2/models/no-such-model")

    period = time.strftime("%Y%m", time.gmtime())
    organization_set_spend_capped(organization_id=organization.pk, period=period, capped=True)
    with pytest.raises(moat_client.SpendCapReachedError) as capped:
        moat.predict("digits", [[0] * 64])
    assert capped.value.status == 402
    organization_set_spend_capped(organization_id=organization.pk, period=period, capped=False)

    apikeys_freeze_for_organization(organization_id=organization.pk, actor="abuse:test", reason="extraction")
    time.sleep(0.3)  # the key cache's period
    with pytest.raises(moat_client.KeyFrozenError) as frozen:
        moat.models()
    assert frozen.value.status == 403 and isinstance(frozen.value, moat_client.MoatError)

    with pytest.raises(moat_client.ConnectionFailedError):
        Moat(api_key=key, base_url=f"http://127.0.0.1:{free_port()}", timeout=2).models()


def _wait_unless_early_in_the_minute(latest_second: int) -> None:
    """The quota's minute windows are calendar minutes: a test that must stay within one starts early in it."""
    second = time.time() % 60
    if second > latest_second:
        time.sleep(60 - second + 0.05)


def test_a_wait_beyond_the_budget_is_raised_at_once_with_the_answers_already_paid_for(server):
    organization = _organization("free")
    Tier.objects.filter(code="free").update(requests_per_minute=15)
    _wait_unless_early_in_the_minute(40)  # two batches in one window, and more than 5 s left of it for Retry-After
    moat = Moat(api_key=raw_key_for(organization), base_url=server, max_batch_size=10, max_retry_wait=5)
    started = time.monotonic()
    with pytest.raises(moat_client.RateLimitedError) as limited:
        moat.predict("digits", natural_inputs(30, seed=4))  # 10 answered, then the minute's last 5 are too few
    assert time.monotonic() - started < 5  # Retry-After exceeds the budget: no sleep
    assert limited.value.status == 429 and limited.value.retry_after > 5
    assert len(limited.value.partial_predictions) == 10


def test_a_503_is_retried_after_retry_after_and_then_served(registered_digits, tmp_path, settings):
    (tmp_path / "redis").mkdir()
    redis_server = RedisServer(tmp_path / "redis").start()
    settings.REDIS_URL = redis_server.url
    key = raw_key_for(_organization("pro"))
    try:
        with web_server(log_path=tmp_path / "web.log", extra_env={"REDIS_URL": redis_server.url}) as (base_url, _):
            moat = Moat(api_key=key, base_url=base_url, max_batch_size=100, max_retry_wait=30)
            assert len(moat.predict("digits", natural_inputs(2))) == 2
            redis_server.kill()
            with pytest.raises(moat_client.ServiceUnavailableError) as unavailable:
                Moat(api_key=key, base_url=base_url, max_batch_size=100, max_retries=0).predict("digits", [[0] * 64])
            assert unavailable.value.retry_after == 5

            restart = threading.Timer(2.0, redis_server.start)
            restart.start()
            started = time.monotonic()
            (prediction,) = moat.predict("digits", [[0] * 64])  # a 503 first, then served after Retry-After
            restart.join()
            assert prediction.label in [str(d) for d in range(10)] and time.monotonic() - started >= 4.5
    finally:
        redis_server.kill()


def test_the_moat_command_prints_json_and_fails_with_one_line(server, tmp_path):
    key = raw_key_for(_organization("pro"))

    def moat(*arguments: str) -> subprocess.CompletedProcess:
        command = [str(Path(sys.executable).parent / "moat"), "--base-url", server, *arguments]
        env = {"MOAT_API_KEY": key, "PATH": str(Path(sys.executable).parent)}
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603 - our own command

    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(natural_inputs(3)))
    done = moat("predict", "digits", f"@{rows}")
    assert done.returncode == 0, done.stderr
    assert [p["label"] for p in json.loads(done.stdout)] == _direct_labels(server, key, natural_inputs(3))
    assert json.loads(moat("models").stdout)[0]["id"] == "digits"

    failed = moat("predict", "nope", "[[1]]")
    assert failed.returncode == 1 and failed.stderr.startswith("moat: 404 model_not_found:") and not failed.stdout
