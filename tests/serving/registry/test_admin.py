"""The registry admin: a model's page shows what it serves and what its watermark costs; versions are read-only
records; registration is a form and activation an action, both calling the services."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.models import User
from serving.ml.artifacts import array_bytes
from serving.registry.models import MLModel, ModelVersion
from serving.registry.selectors import active_version
from serving.registry.services import version_register
from tests.serving.helpers import DIGITS_SCHEMA, create_model, natural_rows, onnx_binding, random_onnx

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client() -> Client:
    admin = User.objects.create_superuser("root@example.com", "a long enough password")
    client = Client()
    client.force_login(admin, backend="accounts.backends.EmailBackend")
    return client


@pytest.fixture
def versions(model_artifact_dir) -> dict[str, ModelVersion]:
    model = create_model()
    return {
        name: version_register(
            model=model,
            variant="full",
            version=name,
            onnx_bytes=random_onnx(),
            metrics={"holdout_accuracy": 0.98},
            provenance={},
            activate=name == "v1",
            **onnx_binding(),
        )
        for name in ("v1", "v2", "v3")
    }


def _activate(client: Client, *versions: ModelVersion):
    return client.post(
        "/admin/registry/modelversion/",
        {"action": "activate_versions", "_selected_action": [v.pk for v in versions]},
        follow=True,
    )


def test_the_pages_render(staff_client, versions):
    assert staff_client.get("/admin/registry/modelversion/").status_code == 200
    assert staff_client.get(f"/admin/registry/modelversion/{versions['v1'].pk}/change/").status_code == 200
    assert staff_client.get("/admin/registry/mlmodel/").status_code == 200
    assert staff_client.get(f"/admin/registry/mlmodel/{versions['v1'].model_id}/change/").status_code == 200


def test_versions_cannot_be_added_edited_or_deleted(staff_client, versions):
    version = versions["v2"]

    assert staff_client.get("/admin/registry/modelversion/add/").status_code == 403
    assert staff_client.get(f"/admin/registry/modelversion/{version.pk}/delete/").status_code == 403
    staff_client.post(f"/admin/registry/modelversion/{version.pk}/change/", {"version": "edited", "is_active": "on"})
    version.refresh_from_db()
    assert version.version == "v2" and version.is_active is False


def test_the_activate_action_switches_the_active_version(staff_client, versions):
    response = _activate(staff_client, versions["v2"])

    assert response.status_code == 200
    assert "Digits full v2 is now active." in response.content.decode()  # the admin capitalises messages
    assert active_version(model_slug="digits", variant="full") == versions["v2"]
    assert ModelVersion.objects.filter(is_active=True).count() == 1


def test_activating_two_versions_of_one_variant_at_once_is_refused(staff_client, versions):
    response = _activate(staff_client, versions["v2"], versions["v3"])

    assert "Select at most one version per model and variant" in response.content.decode()
    assert active_version(model_slug="digits", variant="full") == versions["v1"]


def test_a_version_whose_artifact_is_broken_is_not_activated(staff_client, versions, model_artifact_dir):
    (model_artifact_dir / versions["v2"].artifact_path).write_bytes(b"broken")

    response = _activate(staff_client, versions["v2"])

    assert "cannot be activated" in response.content.decode()
    assert active_version(model_slug="digits", variant="full") == versions["v1"]


def test_staff_without_change_permission_cannot_activate(versions):
    viewer = User.objects.create_user("viewer@example.com", "a long enough password", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_modelversion"))
    client = Client()
    client.force_login(viewer, backend="accounts.backends.EmailBackend")

    page = client.get("/admin/registry/modelversion/")
    assert page.status_code == 200  # they may look
    assert "activate_versions" not in page.content.decode()  # but are not offered the action
    _activate(client, versions["v2"])  # and posting it anyway does nothing

    assert active_version(model_slug="digits", variant="full") == versions["v1"]


def test_a_models_page_says_what_the_public_tiers_are_served_and_what_the_watermark_costs(staff_client, versions):
    page = staff_client.get(f"/admin/registry/mlmodel/{versions['v1'].model_id}/change/").content.decode()

    assert "the FULL version, through the tiers&#x27; output defenses only (no defended version" in page
    assert "an 8x8 image, row by row, intensities 0 to 16 (64 values, 64 bytes logged per input)" in page
    # One row per watermarking tier: its fraction, the share of reference inputs watermarked (never above it).
    assert "<td>Free</td><td>1.50%</td>" in page and "<td>Pro</td><td>1.50%</td>" in page


def _upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def _registration(**changes) -> dict:
    return {
        "slug": "shapes",
        "variant": "full",
        "version": "1",
        "activate": "on",
        "classes": ",".join(str(d) for d in range(10)),
        "schema": json.dumps(DIGITS_SCHEMA),
        "onnx": _upload("model.onnx", random_onnx()),
        "reference_data": _upload("natural.npy", array_bytes(natural_rows())),
        "output_name": "logits",
    } | changes


def test_the_registration_form_creates_the_model_and_its_active_version(staff_client, model_artifact_dir):
    assert "Register a model version" in staff_client.get("/admin/registry/mlmodel/").content.decode()
    assert staff_client.get("/admin/registry/mlmodel/register/").status_code == 200

    response = staff_client.post("/admin/registry/mlmodel/register/", _registration(), follow=True)

    assert response.status_code == 200
    assert "Registered shapes full 1 (active)." in response.content.decode()
    assert active_version(model_slug="shapes", variant="full").version == "1"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"onnx": _upload("model.onnx", b"junk")}, "The file is not an ONNX model (it does not parse as one)."),
        ({"schema": "{nope"}, "The schema is not JSON"),
        ({"classes": ""}, "creating it needs the classes"),
        ({"output_name": ""}, "The graph has 2 float outputs (logits, embedding); name the one"),
    ],
)
def test_the_registration_form_shows_what_is_wrong_and_records_nothing(
    staff_client, model_artifact_dir, changes, message
):
    response = staff_client.post("/admin/registry/mlmodel/register/", _registration(**changes))

    assert response.status_code == 200
    assert message in response.content.decode().replace("&#x27;", "'")
    assert MLModel.objects.count() == ModelVersion.objects.count() == 0


def test_staff_without_the_add_permission_cannot_register(model_artifact_dir):
    viewer = User.objects.create_user("viewer@example.com", "a long enough password", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_mlmodel"))
    client = Client()
    client.force_login(viewer, backend="accounts.backends.EmailBackend")

    assert "Register a model version" not in client.get("/admin/registry/mlmodel/").content.decode()
    assert client.get("/admin/registry/mlmodel/register/").status_code == 403
    assert client.post("/admin/registry/mlmodel/register/", _registration()).status_code == 403
    assert MLModel.objects.count() == 0
