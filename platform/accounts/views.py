"""Sign-up, sign-in, email verification, invitation and member pages. Thin: validate with a form, call a service,
render."""

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.errors import (
    InvitationError,
    InvitationTokenError,
    MembershipError,
    SignupError,
    VerificationTokenError,
)
from accounts.forms import (
    AcceptInvitationForm,
    CanonicalPasswordResetForm,
    InviteForm,
    LoginForm,
    RemoveMemberForm,
    SignupForm,
)
from accounts.models import Membership
from accounts.selectors import (
    invitation_get_for_org,
    invitation_get_usable_by_token,
    is_owner,
    membership_for_user,
    membership_get_for_org,
)
from accounts.services import (
    email_verify,
    invitation_accept,
    invitation_create,
    invitation_revoke,
    membership_remove,
    user_signup,
)
from accounts.tasks import send_verification_email
from accounts.throttles import password_reset_admit
from core.errors import NotFoundError
from core.http import client_ip, user_agent
from portal.views import render_overview

_BACKEND = "accounts.backends.EmailBackend"


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("portal:overview")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_signup(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                organization_name=form.cleaned_data["organization"],
                ip_address=client_ip(request),
                user_agent=user_agent(request),
            )
        except SignupError as exc:
            form.add_error(exc.field, exc.message)
        else:
            login(request, user, backend=_BACKEND)
            messages.success(request, f"Welcome to Moat. We sent a verification link to {user.email}.")
            return redirect("portal:overview")
    return render(request, "accounts/signup.html", {"form": form})


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = ""
    if request.user.is_authenticated and request.method == "GET":
        return redirect(next_url or "portal:overview")
    form = LoginForm(request, data=request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.user, backend=_BACKEND)
        return redirect(next_url or ("console:home" if form.user.is_staff else "portal:overview"))
    return render(request, "accounts/login.html", {"form": form, "next": next_url})


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect("accounts:login")


@require_safe
def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    try:
        user = email_verify(token=token)
    except VerificationTokenError as exc:
        return render(request, "accounts/verify_failed.html", {"message": exc.message}, status=400)
    if request.user.is_authenticated and request.user.pk == user.pk:
        messages.success(request, "Your email address is verified. You can now create API keys.")
        return redirect("apikeys:list")
    return render(request, "accounts/verified.html", {"verified_user": user})


@login_required
@require_POST
def resend_verification(request: HttpRequest) -> HttpResponse:
    if request.user.email_verified:
        messages.info(request, "Your email address is already verified.")
    else:
        send_verification_email.delay(request.user.pk)
        messages.success(request, f"We sent a new verification link to {request.user.email}.")
    return redirect("portal:overview")


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset flow; the emailed link uses SITE_URL, never the Host header the request claimed."""

    form_class = CanonicalPasswordResetForm
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")
    # Not Django's default, which also answers PUT as if it were POST.
    http_method_names = ["get", "post", "head", "options"]

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        # Counted before the form looks anything up or sends anything (accounts.throttles).
        refusal = password_reset_admit(client_ip=client_ip(request), email=request.POST.get("email", ""))
        if refusal is not None:
            form = self.get_form_class()()
            response = render(
                request, self.template_name, {"form": form, "limit_message": refusal.message}, status=refusal.status
            )
            response["Retry-After"] = str(refusal.retry_after)
            return response
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: CanonicalPasswordResetForm) -> HttpResponse:
        site = urlsplit(settings.SITE_URL)
        form.save(
            domain_override=site.netloc,
            use_https=site.scheme == "https",
            subject_template_name=self.subject_template_name,
            email_template_name=self.email_template_name,
            request=self.request,
        )
        return redirect(self.success_url)


# --- invitations and members -----------------------------------------------------------------------------------


def _owner_membership(request: HttpRequest) -> Membership:
    """The signed-in owner's membership. Members and people without one get the 404 of a page that isn't there."""
    membership = membership_for_user(user=request.user)
    if not is_owner(membership=membership):
        raise Http404
    return membership


@login_required
@require_POST
def member_invite(request: HttpRequest) -> HttpResponse:
    membership = _owner_membership(request)
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation, _ = invitation_create(
                organization=membership.organization, email=form.cleaned_data["email"], invited_by=request.user
            )
        except InvitationError as exc:
            form.add_error("email", exc.message)
        else:
            messages.success(request, f"Invitation sent to {invitation.email}.")
            return redirect("portal:overview")
    return render_overview(request, membership=membership, invite_form=form, status=400)


@login_required
@require_POST
def invitation_revoke_view(request: HttpRequest, invitation_id: int) -> HttpResponse:
    membership = _owner_membership(request)
    try:
        invitation = invitation_get_for_org(organization_id=membership.organization_id, invitation_id=invitation_id)
    except NotFoundError as exc:
        raise Http404 from exc
    if invitation_revoke(invitation=invitation, actor=request.user):
        messages.success(request, f"Revoked the invitation of {invitation.email}. Its link no longer works.")
    else:
        messages.info(request, "That invitation was already accepted or revoked.")
    return redirect("portal:overview")


@login_required
@require_POST
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = _owner_membership(request)
    try:
        target = membership_get_for_org(organization_id=membership.organization_id, membership_id=membership_id)
    except NotFoundError as exc:
        raise Http404 from exc
    if not RemoveMemberForm(request.POST).is_valid():
        messages.error(request, "Tick the box to confirm that you want to remove the member.")
        return redirect("portal:overview")
    try:
        removed = membership_remove(organization=membership.organization, membership_id=target.pk, actor=request.user)
    except NotFoundError as exc:  # removed by another owner in the meantime
        raise Http404 from exc
    except MembershipError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Removed {removed.email}. Their account is deactivated and can no longer sign in.")
    return redirect("portal:overview")


@never_cache
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def invitation_accept_view(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invitation = invitation_get_usable_by_token(token=token)
    except InvitationTokenError as exc:
        return render(request, "accounts/invitation_invalid.html", {"message": exc.message}, status=400)
    context = {"invitation": invitation, "organization": invitation.organization, "token": token}
    if request.user.is_authenticated:
        # Accepting creates a new account; it must not happen inside someone else's session.
        return render(request, "accounts/invitation_accept.html", context | {"must_sign_out": True})
    form = AcceptInvitationForm(request.POST or None, email=invitation.email)
    if request.method == "POST" and form.is_valid():
        try:
            user = invitation_accept(
                token=token,
                password=form.cleaned_data["password"],
                ip_address=client_ip(request),
                user_agent=user_agent(request),
            )
        except InvitationTokenError as exc:
            return render(request, "accounts/invitation_invalid.html", {"message": exc.message}, status=400)
        login(request, user, backend=_BACKEND)
        messages.success(request, f"Welcome to {invitation.organization.name} on Moat.")
        return redirect("portal:overview")
    return render(request, "accounts/invitation_accept.html", context | {"form": form})
