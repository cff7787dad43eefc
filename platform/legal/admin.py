from django.contrib import admin
from django.http import HttpRequest

from legal.models import TermsAcceptance, TermsVersion


@admin.register(TermsVersion)
class TermsVersionAdmin(admin.ModelAdmin):
    list_display = ("version", "title", "effective_at", "created_at")
    ordering = ("-effective_at",)

    # A version someone has accepted is what they agreed to: read-only from then on. Publish a new version instead.
    def has_change_permission(self, request: HttpRequest, obj: TermsVersion | None = None) -> bool:
        if obj is not None and obj.acceptances.exists():
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: TermsVersion | None = None) -> bool:
        if obj is not None and obj.acceptances.exists():
            return False
        return super().has_delete_permission(request, obj)


@admin.register(TermsAcceptance)
class TermsAcceptanceAdmin(admin.ModelAdmin):
    list_display = ("user", "terms", "accepted_at", "ip_address")
    list_filter = ("terms",)
    search_fields = ("user__email",)
    readonly_fields = ("body_sha256",)

    # Acceptances are evidence: readable by staff, never edited.
    def has_change_permission(self, request: HttpRequest, obj: TermsAcceptance | None = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: TermsAcceptance | None = None) -> bool:
        return False
