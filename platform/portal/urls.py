from django.urls import path

from portal import views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("account/", views.overview, name="overview"),
    path("docs/", views.docs, name="docs"),
]
