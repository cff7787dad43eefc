"""Read-only admin views of the abuse records; actions go through the console, where each is audited."""

from django.contrib import admin

from abuse.models import Appeal, AuditEntry, Ring, RiskAssessment, RiskState, SignupLink
from core.admin import ReadOnlyAdmin


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_label", "action", "organization_id", "ring_id", "reason"]
    list_filter = ["action"]
    search_fields = ["actor_label", "reason"]


@admin.register(RiskState)
class RiskStateAdmin(ReadOnlyAdmin):
    list_display = ["organization", "score", "level", "ring", "assessed_at", "suspended_at"]
    list_filter = ["level"]


@admin.register(RiskAssessment)
class RiskAssessmentAdmin(ReadOnlyAdmin):
    list_display = ["bucket", "organization_id", "ring_id", "score", "level", "queries"]
    list_filter = ["level"]


@admin.register(Ring)
class RingAdmin(ReadOnlyAdmin):
    list_display = ["pk", "score", "status", "created_at", "updated_at"]


@admin.register(SignupLink)
class SignupLinkAdmin(ReadOnlyAdmin):
    list_display = ["low_id", "high_id", "signal", "weight", "evidence"]
    list_filter = ["signal"]


@admin.register(Appeal)
class AppealAdmin(ReadOnlyAdmin):
    list_display = ["organization", "submitted_by", "created_at", "resolved_at"]
