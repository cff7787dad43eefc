from django.urls import path

from console import views

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("revenue/", views.revenue, name="revenue"),
    path("red-team/", views.red_team, name="red_team"),
    path("reviews/", views.reviews, name="reviews"),
    path("organizations/<int:organization_id>/", views.organization, name="organization"),
    path(
        "organizations/<int:organization_id>/actions/<slug:action>/",
        views.organization_action,
        name="organization_action",
    ),
    path("rings/<int:ring_id>/", views.ring, name="ring"),
    path("audit/", views.audit, name="audit"),
]
