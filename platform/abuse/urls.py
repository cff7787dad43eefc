from django.urls import path

from abuse import views

app_name = "abuse"

urlpatterns = [
    path("appeal/", views.appeal, name="appeal"),
]
