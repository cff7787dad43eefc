from django.urls import path

from apikeys import views

app_name = "apikeys"

urlpatterns = [
    path("keys/", views.key_list, name="list"),
    path("keys/<int:key_id>/roll/", views.key_roll, name="roll"),
    path("keys/<int:key_id>/revoke/", views.key_revoke, name="revoke"),
]
