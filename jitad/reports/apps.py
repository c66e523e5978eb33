from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "jitad.reports"
    label = "reports"
    verbose_name = "reports"
