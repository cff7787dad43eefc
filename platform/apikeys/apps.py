from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    name = "apikeys"
    label = "apikeys"
    verbose_name = "API keys"

    def ready(self) -> None:
        from apikeys import signals  # noqa: F401 - connects the cache invalidation receivers
