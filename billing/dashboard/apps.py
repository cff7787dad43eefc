from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "billing.dashboard"
    label = "billing_dashboard"
    verbose_name = "Billing dashboard"
