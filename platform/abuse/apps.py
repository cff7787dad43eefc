from django.apps import AppConfig


class AbuseConfig(AppConfig):
    name = "abuse"
    label = "abuse"
    verbose_name = "Abuse detection"
