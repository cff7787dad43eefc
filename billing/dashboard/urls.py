from django.urls import path

from billing.dashboard import views

app_name = "billing"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("upgrade/", views.upgrade, name="upgrade"),
    path("manage/", views.manage, name="manage"),
    path("spend-cap/", views.spend_cap_update, name="spend_cap"),
]
