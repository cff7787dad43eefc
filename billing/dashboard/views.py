"""The customer billing dashboard at /billing/: organization owners only. Everyone else signed in gets 404 (the
same answer for members, staff without an organization and anyone else), so the page does not reveal itself."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Membership
from accounts.selectors import is_owner, membership_for_user
from billing.dashboard.forms import SpendCapForm
from billing.dashboard.selectors import (
    CHART_HEIGHT,
    CHART_WIDTH,
    active_alert_banner,
    spend_cap_for_organization,
    spend_cap_reached,
    usage_bars,
)
from billing.dashboard.services import spend_cap_set
from billing.metering.selectors import invoice_preview
from core.errors import ApplicationError

PAYMENTS_NOT_CONFIGURED = "Payments are not configured on this platform."


def _owner_membership(request: HttpRequest) -> Membership:
    """The chokepoint of every billing view: the signed-in owner's membership, else 404."""
    membership = membership_for_user(user=request.user)
    if not is_owner(membership=membership):
        raise Http404
    return membership


def _is_paid(tier) -> bool:
    return tier.monthly_base_price > 0


@dataclass(frozen=True)
class PastInvoice:
    number: str
    status: str
    currency: str
    amount_due: Decimal
    amount_paid: Decimal
    period_start: datetime | None
    period_end: datetime | None
    url: str


def _past_invoices(organization_id: int) -> list[PastInvoice] | None:
    """The organization's Stripe invoices, amounts in dollars; None when the payments app is not available."""
    try:
        from billing.payments.selectors import invoices_for_organization
    except ImportError:
        return None
    return [
        PastInvoice(
            number=invoice.number or "",
            status=invoice.status,
            currency=(invoice.currency or "usd").upper(),
            amount_due=Decimal(invoice.amount_due or 0) / 100,
            amount_paid=Decimal(invoice.amount_paid or 0) / 100,
            period_start=invoice.period_start,
            period_end=invoice.period_end,
            # Only an https link is rendered: the URL comes from a webhook payload, never a javascript: URL.
            url=invoice.hosted_invoice_url if (invoice.hosted_invoice_url or "").startswith("https://") else "",
        )
        for invoice in invoices_for_organization(organization_id=organization_id)
    ]


def _render_dashboard(
    request: HttpRequest, *, membership: Membership, form: SpendCapForm | None = None, status: int = 200
) -> HttpResponse:
    organization = membership.organization
    tier = organization.tier
    now = timezone.now()
    preview = invoice_preview(organization_id=organization.pk, now=now)
    cap = spend_cap_for_organization(organization_id=organization.pk)
    if form is None:
        form = SpendCapForm(initial={"monthly_cap": cap.monthly_cap if cap else None})
    included = preview.included_units
    context = {
        "organization": organization,
        "tier": tier,
        "preview": preview,
        "usage_percent": (preview.units_used * 100 // included) if included else None,
        "bars": usage_bars(preview.daily_units),
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
        "past_invoices": _past_invoices(organization.pk),
        "spend_cap": cap,
        "spend_cap_reached": spend_cap_reached(cap=cap, total=preview.total),
        "spend_cap_form": form,
        "alert_banner": active_alert_banner(organization_id=organization.pk, now=now),
        "can_upgrade": not _is_paid(tier),
        "can_manage": _is_paid(tier),
    }
    return render(request, "billing/dashboard.html", context, status=status)


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    return _render_dashboard(request, membership=_owner_membership(request))


@login_required
@require_POST
def spend_cap_update(request: HttpRequest) -> HttpResponse:
    membership = _owner_membership(request)
    form = SpendCapForm(request.POST)
    if not form.is_valid():
        return _render_dashboard(request, membership=membership, form=form, status=400)
    monthly_cap = form.cleaned_data["monthly_cap"]
    spend_cap_set(organization=membership.organization, monthly_cap=monthly_cap, actor=request.user)
    if monthly_cap is None:
        messages.success(request, "Spend cap removed.")
    else:
        messages.success(request, f"Spend cap set to ${monthly_cap:,.2f} per month.")
    return redirect("billing:dashboard")


def _dashboard_url(suffix: str = "") -> str:
    return settings.SITE_URL + reverse("billing:dashboard") + suffix


@login_required
@require_POST
def upgrade(request: HttpRequest) -> HttpResponse:
    """Start a Stripe Checkout for the paid plan; without payments configured, back to the page with the reason."""
    organization = _owner_membership(request).organization
    if _is_paid(organization.tier):
        messages.info(request, f"Your organization is already on the {organization.tier.name} plan.")
        return redirect("billing:dashboard")
    try:
        from billing.payments.services import checkout_session_start
    except ImportError:
        messages.error(request, PAYMENTS_NOT_CONFIGURED)
        return redirect("billing:dashboard")
    try:
        url = checkout_session_start(
            organization=organization,
            success_url=_dashboard_url("?checkout=success"),
            cancel_url=_dashboard_url("?checkout=cancelled"),
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("billing:dashboard")
    return redirect(url)


@login_required
@require_POST
def manage(request: HttpRequest) -> HttpResponse:
    """Open the Stripe customer portal (card, invoices, cancel); same fallback as upgrade."""
    organization = _owner_membership(request).organization
    try:
        from billing.payments.services import portal_session_start
    except ImportError:
        messages.error(request, PAYMENTS_NOT_CONFIGURED)
        return redirect("billing:dashboard")
    try:
        url = portal_session_start(organization=organization, return_url=_dashboard_url())
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("billing:dashboard")
    return redirect(url)
