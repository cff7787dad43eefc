"""System checks of the platform's own settings."""

from django.conf import settings
from django.core.checks import Error, register


@register(deploy=True)
def benchmark_switches_are_off(app_configs, **kwargs) -> list[Error]:
    if getattr(settings, "BENCHMARK_WITHOUT_QUOTA", False):
        return [
            Error(
                "MOAT_BENCHMARK_WITHOUT_QUOTA is on: the API enforces no quota.",
                hint="It exists for `make bench` only. Unset it.",
                id="moat.E001",
            )
        ]
    return []
