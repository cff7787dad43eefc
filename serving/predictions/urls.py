from django.urls import path

from serving.predictions import api

app_name = "api"

urlpatterns = [
    path("models", api.model_list, name="models"),
    path("models/<str:model_id>/predict", api.predict, name="predict"),
    path("usage", api.usage, name="usage"),
]
