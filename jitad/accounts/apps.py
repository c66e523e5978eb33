from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "jitad.accounts"
    label = "accounts"
    verbose_name = "Accounts and MFA"

    def ready(self):
        from . import signals  # noqa: F401
