"""The registry admin: versions are read-only records; activation is an action that calls the service."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.models import User
from serving.registry.models import ModelVersion
from serving.registry.selectors import active_version
from serving.registry.services import model_get_or_create_digits, version_register
from tests.serving.helpers import write_artifact

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client() -> Client:
    admin = User.objects.create_superuser("root@example.com", "a long enough password")
    client = Client()
    client.force_login(admin, backend="accounts.backends.EmailBackend")
    return client


@pytest.fixture
def versions(tmp_path) -> dict[str, ModelVersion]:
    model = model_get_or_create_digits()
    path = tmp_path / "m.npz"
    write_artifact(path)
    return {
        name: version_register(
            model=model,
            variant="full",
            version=name,
            artifact_file=path,
            metrics={"holdout_accuracy": 0.98},
            provenance={},
            activate=name == "v1",
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
