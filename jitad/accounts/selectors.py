"""Reads of a person's own MFA devices and API tokens, for the portal's pages; nothing here changes state."""
from django.db.models import QuerySet
from django_otp_webauthn.models import WebAuthnCredential

from .devices import AuthenticatorDevice, BackupCode, BackupCodeDevice
from .models import ApiToken


def has_passkey(*, user) -> bool:
    """The person has a confirmed passkey."""
    return WebAuthnCredential.objects.filter(user=user, confirmed=True).exists()


def has_backup_codes(*, user) -> bool:
    """The person has a set of backup codes (confirmed or not)."""
    return BackupCodeDevice.objects.filter(user=user).exists()


def backup_codes_left(*, user) -> int:
    """How many unused backup codes the person holds."""
    return BackupCode.objects.filter(device__user=user).count()


def mfa_devices_of(*, user) -> list[dict]:
    """The person's confirmed MFA devices for the Security page: authenticator apps, backup codes, passkeys."""
    rows = []
    for d in AuthenticatorDevice.objects.filter(user=user, confirmed=True):
        rows.append({"kind": "Authenticator app", "name": d.name, "id": d.persistent_id, "last_used": d.last_used_at,
                     "created": d.created_at})
    for d in BackupCodeDevice.objects.filter(user=user, confirmed=True):
        rows.append({"kind": "Backup codes", "name": f"{d.code_set.count()} left", "id": d.persistent_id,
                     "last_used": d.last_used_at, "created": d.created_at})
    for d in WebAuthnCredential.objects.filter(user=user, confirmed=True):
        rows.append({"kind": "Passkey", "name": d.name or "passkey", "id": d.persistent_id, "last_used": d.last_used_at,
                     "created": d.created_at})
    return rows


def api_tokens_of(*, user) -> QuerySet:
    """The person's API tokens (the model's default order)."""
    return ApiToken.objects.filter(user=user)
