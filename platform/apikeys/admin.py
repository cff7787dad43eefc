from django.contrib import admin

from apikeys.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("display", "name", "organization", "state", "created_at", "last_used_at", "expires_at")
    list_filter = ("state",)
    search_fields = ("name", "display", "organization__name")
    readonly_fields = ("key_hash", "display", "created_at", "last_used_at", "replaced_by", "created_by")

    def has_add_permission(self, request) -> bool:
        return False  # keys are made by people in the portal or by `create_account`, which show them once

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revocation is a state, not a delete
