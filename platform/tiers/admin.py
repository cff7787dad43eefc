from django.contrib import admin

from tiers.models import Tier


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "is_public",
        "model_variant",
        "requests_per_minute",
        "requests_per_hour",
        "requests_per_day",
        "monthly_included_requests",
        "monthly_base_price",
        "price_per_1000_overage",
        "max_batch_size",
    )
    list_editable = ("requests_per_minute", "requests_per_hour", "requests_per_day")
    ordering = ("sort_order",)

    def get_readonly_fields(self, request, obj=None) -> tuple[str, ...]:
        # Code is how sign-up, billing and the API's snapshots name a tier: fixed once the tier exists.
        return ("code",) if obj is not None else ()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
