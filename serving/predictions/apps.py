from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    name = "serving.predictions"
    label = "predictions"
    verbose_name = "Predictions API and query log"
