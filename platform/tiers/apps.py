from django.apps import AppConfig


class TiersConfig(AppConfig):
    name = "tiers"
    label = "tiers"
    verbose_name = "Pricing tiers"
