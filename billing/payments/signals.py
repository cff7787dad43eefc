"""Create a Stripe customer for each new organization, asynchronously, once payments are configured."""

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.models import Organization


@receiver(post_save, sender=Organization, dispatch_uid="payments-create-stripe-customer")
def _create_customer(sender, instance: Organization, created: bool, raw: bool = False, **kwargs) -> None:
    if not created or raw or not settings.BILLING_PAYMENTS_ENABLED:
        return
    from billing.payments.tasks import create_stripe_customer

    organization_id = instance.pk
    transaction.on_commit(lambda: create_stripe_customer.delay(organization_id))
