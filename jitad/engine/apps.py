from django.apps import AppConfig


class EngineConfig(AppConfig):
    name = "jitad.engine"
    label = "engine"
    verbose_name = "engine"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import worker  # noqa: F401  (connects the Celery worker hooks)
