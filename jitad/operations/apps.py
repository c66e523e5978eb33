from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "jitad.operations"
    label = "operations"
    verbose_name = "operations"
