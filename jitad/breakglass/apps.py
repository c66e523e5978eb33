from django.apps import AppConfig


class BreakglassConfig(AppConfig):
    name = "jitad.breakglass"
    label = "breakglass"
    verbose_name = "Break-glass"
