from django.apps import AppConfig
from django.core import checks


class NotificationsConfig(AppConfig):
    name = "jitad.notifications"
    label = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        checks.register(_mail_configured, checks.Tags.compatibility)


def _mail_configured(app_configs, **kwargs):
    """In production, e-mail to approvers and requesters must leave the machine."""
    from django.conf import settings

    if settings.PRODUCTION and settings.EMAIL_BACKEND.endswith("filebased.EmailBackend"):
        return [checks.Warning(
            "JITAD_EMAIL_URL is not set: e-mails to approvers and requesters are written to files under "
            f"{settings.EMAIL_FILE_PATH} instead of being sent.",
            hint="Set JITAD_EMAIL_URL (e.g. smtp+tls://user:password@smtp.corp.example:587) and JITAD_EMAIL_FROM.",
            id="jitad.W001",
        )]
    return []
