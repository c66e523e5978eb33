from django.apps import AppConfig


class ElevationConfig(AppConfig):
    name = "jitad.elevation"
    label = "elevation"
    default_auto_field = "django.db.models.BigAutoField"
