from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path, re_path

from core import views as core_views
from serving.predictions import api_v2
from serving.predictions.schema import openapi_document

# Staff sign in through the same page (and the same lockout) as everyone else.
admin.site.login = login_required(admin.site.login)
admin.site.site_header = "Moat administration"
admin.site.site_title = "Moat admin"

urlpatterns = [
    # First: the prediction path is the hot one, and the resolver tries patterns in order.
    path("v1/", include("serving.predictions.urls")),
    path("v2", api_v2.server_metadata, name="v2-server-metadata"),
    path("v2/", include("serving.predictions.urls_v2")),
    path("", include("portal.urls")),
    path("", include("accounts.urls")),
    path("", include("legal.urls")),
    path("", include("apikeys.urls")),
    path("", include("abuse.urls")),
    path("healthz", core_views.healthz, name="healthz"),
    path("", include("monitoring.urls")),
    path("console/", include("console.urls")),
    path("admin/", admin.site.urls),
    path("billing/", include("billing.payments.urls")),
    path("billing/", include("billing.dashboard.urls")),
    path("api/openapi.json", openapi_document, name="openapi"),
    # Anything under /v1/ that no API route matched answers in the API's JSON error shape.
    re_path(r"^v1/", core_views.api_not_found),
    re_path(r"^v2/", core_views.api_not_found),
]

handler400 = "core.views.bad_request"
handler403 = "core.views.permission_denied"
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"
