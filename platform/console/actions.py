"""The graded review actions a reviewer can take on an organization from its console page, mildest first. Each is a
form class and a call of one abuse service; the view validates, calls, and reports. Adding an action here adds
its form to the page and its URL (console:organization_action with the action's slug)."""

from collections.abc import Callable
from dataclasses import dataclass

from django import forms

from abuse.models import AuditEntry
from abuse.services import (
    Actor,
    organization_add_note,
    organization_clear_throttle,
    organization_freeze,
    organization_mark_false_positive,
    organization_suspend,
    organization_throttle,
    organization_unfreeze,
    organization_unsuspend,
    organization_warn,
)
from accounts.models import Organization
from console.forms import NoteForm, ReasonForm, ThrottleForm

Run = Callable[[Organization, Actor, dict], AuditEntry | None]


@dataclass(frozen=True)
class ReviewAction:
    slug: str
    title: str  # the form's heading
    button: str
    form_class: type[forms.Form]
    run: Run
    done: str  # the message after it ran
    nothing_to_do: str  # the message when the service had nothing to change (it returned None)
    danger: bool = False


def _reason_only(service: Callable[..., AuditEntry | None]) -> Run:
    return lambda organization, actor, data: service(organization=organization, actor=actor, reason=data["reason"])


ACTIONS: dict[str, ReviewAction] = {
    action.slug: action
    for action in [
        ReviewAction(
            slug="warn", title="Warn", button="Send warning", form_class=ReasonForm,
            run=_reason_only(organization_warn),
            done="Warning sent to the members; a strike is on record.", nothing_to_do="",
        ),
        ReviewAction(
            slug="throttle", title="Throttle", button="Throttle", form_class=ThrottleForm,
            run=lambda organization, actor, data: organization_throttle(
                organization=organization, actor=actor, reason=data["reason"], factor=data.get("factor")
            ),
            done="Limits reduced.", nothing_to_do="Nothing changed: the organization is already throttled that far.",
        ),
        ReviewAction(
            slug="clear-throttle", title="Clear throttle", button="Clear throttle", form_class=ReasonForm,
            run=_reason_only(organization_clear_throttle),
            done="Throttle cleared: the tier's full limits apply.",
            nothing_to_do="Nothing changed: the organization was not throttled.",
        ),
        ReviewAction(
            slug="freeze", title="Freeze keys", button="Freeze keys", form_class=ReasonForm,
            run=_reason_only(organization_freeze), danger=True,
            done="Keys frozen: their calls now get 403 key_frozen.",
            nothing_to_do="Nothing changed: the organization has no active key.",
        ),
        ReviewAction(
            slug="unfreeze", title="Unfreeze keys", button="Unfreeze keys", form_class=ReasonForm,
            run=_reason_only(organization_unfreeze), done="Keys unfrozen; open appeals are resolved.", nothing_to_do="",
        ),
        ReviewAction(
            slug="suspend", title="Suspend", button="Suspend organization", form_class=ReasonForm,
            run=_reason_only(organization_suspend), danger=True,
            done="Organization suspended: its keys are frozen until the suspension is lifted.", nothing_to_do="",
        ),
        ReviewAction(
            slug="unsuspend", title="Lift suspension", button="Lift suspension", form_class=ReasonForm,
            run=_reason_only(organization_unsuspend),
            done="Suspension lifted. The keys stay frozen until you unfreeze them.", nothing_to_do="",
        ),
        ReviewAction(
            slug="false-positive", title="Mark as false positive", button="Mark as false positive",
            form_class=ReasonForm, run=_reason_only(organization_mark_false_positive),
            done="Marked as a false positive: the evidence so far counts as reviewed.", nothing_to_do="",
        ),
        ReviewAction(
            slug="note", title="Add a note", button="Add note", form_class=NoteForm,
            run=lambda organization, actor, data: organization_add_note(
                organization=organization, actor=actor, note=data["reason"]
            ),
            done="Note added to the audit log.", nothing_to_do="",
        ),
    ]
}  # fmt: skip


def action_forms(*, bound: tuple[str, forms.Form] | None = None) -> list[tuple[ReviewAction, forms.Form]]:
    """Every action with its form: unbound, except the one just submitted (to show its errors). Each form has the
    action's slug as prefix, so the page's many reason fields have distinct ids."""
    return [
        (action, bound[1] if bound and bound[0] == action.slug else action.form_class(prefix=action.slug))
        for action in ACTIONS.values()
    ]
