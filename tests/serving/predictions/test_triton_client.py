"""The Open Inference Protocol as its own clients speak it: the real `tritonclient[http]` (pinned) against the real
web server, for each tier, with binary and JSON tensors, classification, a 429 and a frozen key."""

import time

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from apikeys.services import apikeys_freeze_for_organization
from tests.factories import OrganizationFactory, member, raw_key_for
from tests.processes import web_server
from tests.serving.predictions.test_api import key_on, natural_inputs
from tiers.models import Tier

pytestmark = pytest.mark.django_db(transaction=True)


def _client(base_url: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=base_url.removeprefix("http://"), network_timeout=30.0)


def _infer(client, key: str, rows: np.ndarray, *, binary: bool, outputs=None):
    tensor = triton.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows.astype(np.float32), binary_data=binary)
    return client.infer("digits", [tensor], outputs=outputs, headers={"Authorization": f"Bearer {key}"})


def test_tritonclient_reads_metadata_and_infers_on_every_tier(registered_digits, tmp_path):
    Tier.objects.update(requests_per_minute=1_000_000, requests_per_hour=1_000_000, requests_per_day=1_000_000)
    keys = {code: key_on(code) for code in ("free", "pro", "enterprise")}
    rows = np.asarray(natural_inputs(6, seed=11), dtype=np.float32)
    with web_server(log_path=tmp_path / "web.log") as (base_url, _):
        client = _client(base_url)
        assert client.is_server_live() and client.is_server_ready()
        assert "classification" in client.get_server_metadata()["extensions"]
        for tier, key in keys.items():
            headers = {"Authorization": f"Bearer {key}"}
            assert client.is_model_ready("digits", headers=headers)
            metadata = client.get_model_metadata("digits", headers=headers)
            served = [output["name"] for output in metadata["outputs"]]
            assert served == (
                ["label", "confidence", "probabilities"] if tier == "enterprise" else ["label", "confidence"]
            )

            as_binary = _infer(client, key, rows, binary=True)
            as_json = _infer(client, key, rows, binary=False)
            labels = as_binary.as_numpy("label")
            assert labels.shape == (6,) and set(labels.tolist()) <= {str(d) for d in range(10)}
            assert (as_json.as_numpy("label") == labels).all()
            confidence = as_binary.as_numpy("confidence")
            assert confidence.shape == (6,) and ((confidence > 0) & (confidence <= 1)).all()
            if tier == "enterprise":
                probabilities = as_binary.as_numpy("probabilities")
                assert probabilities.shape == (6, 10)
                assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
                assert [str(p) for p in probabilities.argmax(axis=1)] == labels.tolist()
            else:
                assert as_binary.as_numpy("probabilities") is None
                decimals = 1 if tier == "free" else 2
                assert np.allclose(np.round(confidence, decimals), confidence, atol=1e-6)

        top3 = _infer(client, keys["enterprise"], rows, binary=True,
                      outputs=[triton.InferRequestedOutput("probabilities", class_count=3)])  # fmt: skip
        ranked = top3.as_numpy("probabilities")
        assert ranked.shape == (6, 3)
        values = [[float(entry.split(":")[0]) for entry in row] for row in ranked.tolist()]
        assert all(row == sorted(row, reverse=True) for row in values)

        with pytest.raises(InferenceServerException) as unknown:
            client.get_model_metadata("no-such-model", headers={"Authorization": f"Bearer {keys['pro']}"})
        assert unknown.value.status() == "404" and "no-such-model" in unknown.value.message()


def test_tritonclient_meets_a_429_and_a_frozen_key(registered_digits, tmp_path):
    organization = member(organization=OrganizationFactory(tier=Tier.objects.get(code="pro"))).membership.organization
    Tier.objects.filter(code="pro").update(requests_per_minute=8)
    key = raw_key_for(organization)
    rows = np.asarray(natural_inputs(5, seed=12), dtype=np.float32)
    with web_server(log_path=tmp_path / "web.log", extra_env={"API_KEY_CACHE_SECONDS": "0.2"}) as (base_url, _):
        client = _client(base_url)
        assert _infer(client, key, rows, binary=True).as_numpy("label").shape == (5,)
        with pytest.raises(InferenceServerException) as limited:
            _infer(client, key, rows, binary=True)  # 5 more rows than the 3 left this minute
        assert limited.value.status() == "429" and "per-minute limit" in limited.value.message()

        apikeys_freeze_for_organization(organization_id=organization.pk, actor="abuse:test", reason="extraction")
        time.sleep(0.3)  # the key cache's period: every worker now sees the freeze
        for _ in range(4):  # whichever worker answers
            with pytest.raises(InferenceServerException) as frozen:
                client.get_model_metadata("digits", headers={"Authorization": f"Bearer {key}"})
            assert frozen.value.status() == "403" and "frozen" in frozen.value.message()
