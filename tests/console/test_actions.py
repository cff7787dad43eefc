"""The graded actions from the organization page: each calls its service with the reviewer and the reason, lands
in the audit log, and comes back to the page with a message; refusals are form errors, never a 500."""

import pytest
from django.core import mail
from django.test import Client

from abuse.models import AuditEntry, RiskState
from accounts.models import Organization
from apikeys.models import ApiKey, KeyState
from tests.factories import raw_key_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def keyed(organization) -> Organization:
    raw_key_for(organization, name="one")
    raw_key_for(organization, name="two")
    return organization


def act(client: Client, organization: Organization, slug: str, reason: str = "Reviewed the traffic.", **fields):
    data = {f"{slug}-reason": reason, **{f"{slug}-{name}": value for name, value in fields.items()}}
    return client.post(f"/console/organizations/{organization.pk}/actions/{slug}/", data, follow=True)


def key_states(organization: Organization) -> set[str]:
    return set(ApiKey.objects.filter(organization=organization).values_list("state", flat=True))


def entries(organization: Organization) -> list[tuple[str, str]]:
    return list(
        AuditEntry.objects.filter(organization_id=organization.pk).order_by("pk").values_list("action", "reason")
    )


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_warn_adds_a_strike_and_emails_the_members(keyed, reviewer_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = act(reviewer_client, keyed, "warn", "Stop sweeping the input space.")
    assert response.redirect_chain == [(f"/console/organizations/{keyed.pk}/", 302)]
    assert messages_of(response) == ["Warning sent to the members; a strike is on record."]
    assert AuditEntry.objects.filter(organization_id=keyed.pk, action="warn").count() == 1
    assert entries(keyed) == [("warn", "Stop sweeping the input space.")]
    assert [message.to for message in mail.outbox] == [["owner@example.com"]]


def test_throttle_with_a_factor_then_the_default_then_clear(keyed, reviewer_client, settings):
    settings.ABUSE_THROTTLE_FACTOR = 0.25
    response = act(reviewer_client, keyed, "throttle", factor="0.5")
    assert messages_of(response) == ["Limits reduced."]
    keyed.refresh_from_db()
    assert (keyed.throttle_factor, keyed.throttle_set_by) == (0.5, "reviewer@moat.example")
    assert AuditEntry.objects.get().details == {"factor": 0.5, "previous_factor": 1.0}

    # The factor is optional: blank means the platform's default.
    act(reviewer_client, keyed, "throttle", factor="")
    keyed.refresh_from_db()
    assert keyed.throttle_factor == 0.25

    # Loosening through "throttle" does nothing (the service only tightens): say so, write nothing.
    response = act(reviewer_client, keyed, "throttle", factor="0.9")
    assert messages_of(response) == ["Nothing changed: the organization is already throttled that far."]
    assert len(entries(keyed)) == 2

    response = act(reviewer_client, keyed, "clear-throttle", "Customer explained the batch job.")
    assert messages_of(response) == ["Throttle cleared: the tier's full limits apply."]
    keyed.refresh_from_db()
    assert keyed.throttle_factor == 1.0
    assert entries(keyed)[-1] == ("clear_throttle", "Customer explained the batch job.")
    assert RiskState.objects.get(organization=keyed).cleared_at is not None


@pytest.mark.parametrize("factor", ["0", "-0.5", "1.5", "nan", "lots"])
def test_a_factor_outside_0_to_1_is_a_form_error(keyed, reviewer_client, factor):
    response = act(reviewer_client, keyed, "throttle", factor=factor)
    assert response.status_code == 400
    assert 'id="id_throttle-factor_error"' in response.content.decode()
    keyed.refresh_from_db()
    assert keyed.throttle_factor == 1.0
    assert not AuditEntry.objects.exists()


def test_freeze_then_unfreeze(keyed, reviewer_client):
    response = act(reviewer_client, keyed, "freeze", "Extraction pattern.")
    assert messages_of(response) == ["Keys frozen: their calls now get 403 key_frozen."]
    assert key_states(keyed) == {KeyState.FROZEN}
    page = response.content.decode()
    assert page.count('data-key-state="frozen"') == 2 and "Extraction pattern." in page

    # Nothing left to freeze: an info message, no second entry.
    assert messages_of(act(reviewer_client, keyed, "freeze")) == [
        "Nothing changed: the organization has no active key."
    ]

    response = act(reviewer_client, keyed, "unfreeze", "False alarm, a research lab.")
    assert messages_of(response) == ["Keys unfrozen; open appeals are resolved."]
    assert key_states(keyed) == {KeyState.ACTIVE}
    assert entries(keyed) == [("freeze", "Extraction pattern."), ("unfreeze", "False alarm, a research lab.")]


def test_suspend_blocks_unfreeze_until_lifted(keyed, reviewer_client):
    act(reviewer_client, keyed, "suspend", "Ring operator.")
    assert key_states(keyed) == {KeyState.FROZEN}
    assert RiskState.objects.get(organization=keyed).suspended_at is not None

    # The services' refusals come back as form errors on the page (400), never a 500.
    response = act(reviewer_client, keyed, "unfreeze", "Try.")
    assert response.status_code == 400
    assert "The organization is suspended: lift the suspension to unfreeze its keys." in response.content.decode()
    response = act(reviewer_client, keyed, "suspend", "Again.")
    assert response.status_code == 400
    assert "The organization is already suspended." in response.content.decode()
    assert key_states(keyed) == {KeyState.FROZEN}

    response = act(reviewer_client, keyed, "unsuspend", "Appeal accepted.")
    assert messages_of(response) == ["Suspension lifted. The keys stay frozen until you unfreeze them."]
    assert RiskState.objects.get(organization=keyed).suspended_at is None
    assert key_states(keyed) == {KeyState.FROZEN}
    act(reviewer_client, keyed, "unfreeze", "Appeal accepted.")
    assert key_states(keyed) == {KeyState.ACTIVE}
    assert [action for action, _ in entries(keyed)] == ["suspend", "unsuspend", "unfreeze"]


def test_unsuspending_an_organization_that_is_not_suspended_is_a_form_error(keyed, reviewer_client):
    response = act(reviewer_client, keyed, "unsuspend")
    assert response.status_code == 400
    assert "The organization is not suspended." in response.content.decode()
    assert not AuditEntry.objects.exists()


def test_false_positive_and_note(keyed, reviewer_client):
    RiskState.objects.create(organization=keyed, score=82, level="freeze", top_reasons=["Boundary probing"])
    response = act(reviewer_client, keyed, "false-positive", "Active-learning research, approved.")
    assert messages_of(response) == ["Marked as a false positive: the evidence so far counts as reviewed."]
    entry = AuditEntry.objects.get()
    assert entry.details == {"score": 82, "level": "freeze", "top_reasons": ["Boundary probing"]}
    assert RiskState.objects.get(organization=keyed).cleared_at is not None

    response = act(reviewer_client, keyed, "note", "Called the CTO; they will slow down.")
    assert messages_of(response) == ["Note added to the audit log."]
    assert entries(keyed)[-1] == ("note", "Called the CTO; they will slow down.")
    assert "Called the CTO; they will slow down." in response.content.decode()


def test_a_failed_form_keeps_the_other_forms_blank_and_the_typed_values(keyed, reviewer_client):
    response = act(reviewer_client, keyed, "throttle", "Slow them.", factor="7")
    page = response.content.decode()
    assert "Slow them.</textarea>" in page
    assert page.count("errorlist") == 1
