from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "billing.payments"
    label = "payments"
    verbose_name = "Payments (Stripe)"

    def ready(self) -> None:
        from billing.payments import signals  # noqa: F401 - connects the receivers
