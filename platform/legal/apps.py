from django.apps import AppConfig


class LegalConfig(AppConfig):
    name = "legal"
    label = "legal"
    verbose_name = "Terms of Service"
