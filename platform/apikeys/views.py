"""The API keys page. A new key's raw value is rendered in the response to the POST that made it, and nowhere
else: it is not stored in the session, the database or a message."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.selectors import membership_for_user
from apikeys.errors import EmailNotVerifiedError, KeyNotActiveError, OrganizationFrozenError
from apikeys.forms import CreateKeyForm, RevokeKeyForm, RollKeyForm
from apikeys.models import KeyState
from apikeys.selectors import apikey_get_for_org, apikey_list_for_org
from apikeys.services import apikey_create, apikey_revoke, apikey_roll
from core.errors import NotFoundError


def _organization(request: HttpRequest):
    membership = membership_for_user(user=request.user)
    if membership is None:
        raise Http404
    return membership.organization


def _key_or_404(request: HttpRequest, key_id: int):
    try:
        return apikey_get_for_org(organization_id=_organization(request).pk, key_id=key_id)
    except NotFoundError as exc:
        raise Http404 from exc


def _render_keys(request: HttpRequest, *, form: CreateKeyForm, new_key=None, raw_key: str | None = None, status=200):
    organization = _organization(request)
    context = {
        "organization": organization,
        "keys": apikey_list_for_org(organization_id=organization.pk).select_related("replaced_by"),
        "form": form,
        "roll_form": RollKeyForm(),
        "new_key": new_key,
        "raw_key": raw_key,
    }
    response = render(request, "apikeys/keys.html", context, status=status)
    if raw_key:
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def key_list(request: HttpRequest) -> HttpResponse:
    form = CreateKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            new_key, raw_key = apikey_create(
                organization=_organization(request), name=form.cleaned_data["name"], created_by=request.user
            )
        except (EmailNotVerifiedError, OrganizationFrozenError) as exc:
            form.add_error(None, exc.message)
        else:
            return _render_keys(request, form=CreateKeyForm(), new_key=new_key, raw_key=raw_key, status=201)
    return _render_keys(request, form=form, status=400 if form.errors else 200)


@login_required
@require_POST
def key_roll(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = _key_or_404(request, key_id)
    form = RollKeyForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose when the old key should stop working.")
        return redirect("apikeys:list")
    try:
        new_key, raw_key = apikey_roll(api_key=api_key, actor=request.user, grace=form.grace_period())
    except (KeyNotActiveError, EmailNotVerifiedError, OrganizationFrozenError) as exc:
        messages.error(request, exc.message)
        return redirect("apikeys:list")
    return _render_keys(request, form=CreateKeyForm(), new_key=new_key, raw_key=raw_key, status=201)


@login_required
@require_POST
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = _key_or_404(request, key_id)
    form = RevokeKeyForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Tick the box to confirm that you want to revoke the key.")
    elif apikey_revoke(api_key=api_key, actor=request.user.email, reason="Revoked in the portal."):
        messages.success(request, f"Revoked {api_key.name} ({api_key.display}). It no longer works.")
    elif api_key.state == KeyState.FROZEN:
        messages.error(request, "A frozen key stays as it is until the abuse review ends.")
    else:
        messages.info(request, "That key was already revoked.")
    return redirect("apikeys:list")
