from django.contrib import admin

from billing.payments.models import BillingAccount, Invoice, MeterReport, StripeEvent, StripeTierPrice
from core.admin import ReadOnlyAdmin


@admin.register(BillingAccount)
class BillingAccountAdmin(admin.ModelAdmin):
    list_display = [
        "organization",
        "stripe_customer_id",
        "subscription_status",
        "grace_until",
        "current_period_end",
        "updated_at",
    ]
    list_filter = ["subscription_status"]
    search_fields = ["organization__name", "stripe_customer_id", "subscription_id", "card_fingerprint"]
    raw_id_fields = ["organization"]
    readonly_fields = ["last_subscription_event_at", "created_at", "updated_at"]


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "type", "status", "attempts", "stripe_created", "received_at", "processed_at"]
    list_filter = ["status", "type"]
    search_fields = ["event_id"]
    date_hierarchy = "received_at"


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ["stripe_invoice_id", "organization", "number", "status", "amount_due", "amount_paid", "currency"]
    list_filter = ["status"]
    search_fields = ["stripe_invoice_id", "number", "organization__name"]
    raw_id_fields = ["organization"]


@admin.register(MeterReport)
class MeterReportAdmin(ReadOnlyAdmin):
    list_display = ["identifier", "organization", "day", "units", "status", "attempts", "sent_at"]
    list_filter = ["status"]
    search_fields = ["identifier", "organization__name"]
    date_hierarchy = "day"


@admin.register(StripeTierPrice)
class StripeTierPriceAdmin(admin.ModelAdmin):
    list_display = ["tier", "product_id", "base_price_id", "metered_price_id", "meter_id", "updated_at"]
