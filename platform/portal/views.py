"""Portal pages: the landing page, the account overview and the API docs."""

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_safe

from accounts.forms import InviteForm
from accounts.models import Membership
from accounts.selectors import invitation_list_pending_for_org, is_owner, membership_for_user, organization_members
from apikeys.models import KeyState
from apikeys.selectors import apikey_list_for_org
from core.db import DATABASE_UNAVAILABLE_ERRORS
from serving.predictions.docs import documented_models
from tiers.selectors import tier_list


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and not request.user.is_staff:
        return redirect("portal:overview")
    return render(request, "portal/home.html", {"tiers": tier_list(public_only=True)})


def render_overview(
    request: HttpRequest, *, membership: Membership, invite_form: InviteForm | None = None, status: int = 200
) -> HttpResponse:
    """The account overview of the membership's organization. Owners also get the invite form (`invite_form`, or
    an empty one) and the pending invitations. The one place this page is rendered, so a view that re-shows it
    with a form error (accounts' invite) shows exactly what the overview shows."""
    organization = membership.organization
    owner = is_owner(membership=membership)
    keys = apikey_list_for_org(organization_id=organization.pk)
    context = {
        "organization": organization,
        "tier": organization.tier,
        "is_owner": owner,
        "members": organization_members(organization=organization),
        "invitations": invitation_list_pending_for_org(organization_id=organization.pk) if owner else [],
        "invite_form": (invite_form or InviteForm()) if owner else None,
        "active_key_count": keys.filter(state=KeyState.ACTIVE).count(),
        "frozen_key_count": keys.filter(state=KeyState.FROZEN).count(),
        "tiers": tier_list(public_only=True),
    }
    return render(request, "portal/overview.html", context, status=status)


@login_required
@require_safe
def overview(request: HttpRequest) -> HttpResponse:
    membership = membership_for_user(user=request.user)
    if membership is None:
        raise Http404
    return render_overview(request, membership=membership)


@require_safe
def docs(request: HttpRequest) -> HttpResponse:
    try:
        models = documented_models()
    except DATABASE_UNAVAILABLE_ERRORS:
        models = []  # the page still explains the API; the models' sections come back with the registry
    return render(
        request,
        "portal/docs.html",
        {
            "api_base": settings.SITE_URL + "/v1",
            "site_url": settings.SITE_URL,
            "site_host": urlsplit(settings.SITE_URL).netloc,
            "site_ssl": urlsplit(settings.SITE_URL).scheme == "https",
            "key_prefix": settings.API_KEY_PREFIX,
            "tiers": tier_list(),
            "models": models,
            "example": models[0] if models else None,
        },
    )
