"""Reads of the Stripe side of billing."""

from django.db.models import QuerySet

from billing.payments.models import BillingAccount, Invoice


def invoices_for_organization(*, organization_id: int) -> QuerySet[Invoice]:
    """The organization's Stripe invoices, newest first (scoped by tenant in the query)."""
    return Invoice.objects.filter(organization_id=organization_id).order_by("-created_at", "-id")


def billing_account_for_organization(*, organization_id: int) -> BillingAccount | None:
    return BillingAccount.objects.filter(organization_id=organization_id).first()
