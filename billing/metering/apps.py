from django.apps import AppConfig


class MeteringConfig(AppConfig):
    name = "billing.metering"
    label = "metering"
    verbose_name = "Usage metering"
