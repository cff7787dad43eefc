from django.urls import path

from legal import views

app_name = "legal"

urlpatterns = [
    path("terms/", views.terms_show, name="terms"),
    path("terms/accept/", views.terms_accept_view, name="accept"),
]
