from django.apps import AppConfig
from django.core import checks


class AccountsConfig(AppConfig):
    name = "jitad.accounts"
    label = "accounts"
    verbose_name = "Accounts and MFA"

    def ready(self):
        from . import signals  # noqa: F401
        from jitad.vault import sealed_field_register

        from .devices import BackupCode, AuthenticatorDevice, backup_ref, totp_ref

        # Key rotation (manage.py jitad_rekey) re-encrypts MFA keys and backup-code hashes too.
        sealed_field_register(name="MFA authenticator keys", field="sealed_key", queryset=lambda: AuthenticatorDevice.objects.all(),
                              ref=lambda d: totp_ref(d.pk, d.user_id), label=lambda d: f"{d.user_id}:{d.name}")
        sealed_field_register(name="MFA backup codes", field="sealed_hash",
                              queryset=lambda: BackupCode.objects.select_related("device"),
                              ref=lambda c: backup_ref(c.device_id, c.device.user_id),
                              label=lambda c: f"{c.device.user_id}:backup codes")
        from .models import EnrolmentCode, enrolment_code_ref

        sealed_field_register(name="MFA enrolment codes", field="sealed_digest",
                              queryset=lambda: EnrolmentCode.objects.all(),
                              ref=lambda c: enrolment_code_ref(c.pk, c.user_id), label=lambda c: f"{c.user_id}:enrolment code")
        from .checks import login_throttle, passkey_origin

        checks.register(passkey_origin, checks.Tags.security)
        checks.register(login_throttle, checks.Tags.security)
