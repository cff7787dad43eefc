from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "serving.registry"
    label = "registry"
    verbose_name = "Model registry"
