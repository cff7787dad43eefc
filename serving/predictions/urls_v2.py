from django.urls import path

from serving.predictions import api_v2

app_name = "v2"

# The Open Inference Protocol's REST routes under /v2/ (`GET /v2`, the server metadata, is in config.urls); the
# version segment is optional wherever the protocol has it.
urlpatterns = [
    path("health/live", api_v2.server_live, name="server-live"),
    path("health/ready", api_v2.server_ready, name="server-ready"),
    path("models/<str:model_name>", api_v2.model_metadata, name="model-metadata"),
    path("models/<str:model_name>/versions/<str:version>", api_v2.model_metadata, name="version-metadata"),
    path("models/<str:model_name>/ready", api_v2.model_ready, name="model-ready"),
    path("models/<str:model_name>/versions/<str:version>/ready", api_v2.model_ready, name="version-ready"),
    path("models/<str:model_name>/infer", api_v2.infer, name="infer"),
    path("models/<str:model_name>/versions/<str:version>/infer", api_v2.infer, name="version-infer"),
]
