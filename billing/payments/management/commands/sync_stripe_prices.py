"""Sync the public tiers' prices to Stripe products, prices and the billing meter (prices are defined once, in the
tiers). Safe to re-run: nothing is created unless a tier's price changed."""

from django.core.management.base import BaseCommand, CommandError

from billing.payments.prices import stripe_prices_sync
from billing.payments.services import PaymentsNotConfiguredError
from billing.payments.stripe_gateway import PaymentGatewayError


class Command(BaseCommand):
    help = "Create or update the Stripe products, prices and billing meter of the public tiers."

    def handle(self, *args, **options) -> None:
        try:
            rows = stripe_prices_sync()
        except (PaymentsNotConfiguredError, PaymentGatewayError) as exc:
            raise CommandError(exc.message) from exc
        for row in rows:
            self.stdout.write(
                f"{row.tier.code}: product {row.product_id}, base price {row.base_price_id}, "
                f"metered price {row.metered_price_id or '-'}, meter {row.meter_id or '-'}"
            )
