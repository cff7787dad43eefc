from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import Invitation, Membership, Organization, SignupRecord, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ("email",)
    list_display = ("email", "email_verified_at", "is_staff", "is_active", "date_joined")
    list_filter = ("is_staff", "is_active", "is_superuser")
    search_fields = ("email", "email_canonical")
    readonly_fields = ("email_canonical", "date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("email", "email_canonical", "password")}),
        ("Status", {"fields": ("email_verified_at", "is_active", "is_staff", "is_superuser")}),
        ("Permissions", {"fields": ("groups", "user_permissions")}),
        ("Dates", {"fields": ("date_joined", "last_login")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "tier", "billing_state", "throttle_factor", "created_at")
    list_filter = ("tier", "billing_state")
    search_fields = ("name",)
    readonly_fields = ("throttle_set_by", "throttle_set_at")
    inlines = [MembershipInline]

    def save_model(self, request, obj: Organization, form, change: bool) -> None:
        throttle_changed = change and {"throttle_factor", "throttle_reason"} & set(form.changed_data)
        super().save_model(request, obj, form, change)
        if throttle_changed:
            # Through the service, so Redis gets the factor on commit and the author is recorded.
            from serving.quotas.services import organization_set_throttle_factor

            organization_set_throttle_factor(
                organization=obj,
                factor=obj.throttle_factor,
                reason=obj.throttle_reason,
                actor=f"staff:{request.user.email}",
            )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # an organization's usage, bills and abuse evidence outlive it: suspend, never delete


@admin.register(SignupRecord)
class SignupRecordAdmin(admin.ModelAdmin):
    list_display = ("email", "ip_address", "email_domain", "created_at")
    search_fields = ("email", "email_canonical", "ip_address")
    list_filter = ("email_domain",)

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # evidence for the abuse jobs: read-only


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ("email", "organization", "role", "created_at", "expires_at", "accepted_at", "revoked_at")
    list_filter = ("role",)
    search_fields = ("email", "email_canonical", "organization__name")
    raw_id_fields = ("organization", "invited_by")
    exclude = ("token_hash",)

    def has_add_permission(self, request) -> bool:
        return False  # invitations are made by owners in the portal, which emails the link

    def has_change_permission(self, request, obj=None) -> bool:
        return False
