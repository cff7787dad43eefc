from django.apps import AppConfig


class RedTeamConfig(AppConfig):
    name = "redteam"
    label = "redteam"
    verbose_name = "Red-team exercise"
