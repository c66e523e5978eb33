"""MFA helpers for tests: real devices (django-otp's, with secrets sealed), real codes, real sessions.

A TOTP code is accepted once per 30-second step (django-otp refuses replays), so tests
that make several OTP-protected calls use backup codes (each one single-use) from
``backup_codes``; ``totp_code`` gives the current TOTP code for the first.
"""
import secrets
import time

import pyotp
from django.conf import settings
from django_otp import DEVICE_ID_SESSION_KEY

from jitad.accounts.devices import AuthenticatorDevice, BackupCodeDevice
from jitad.accounts.mfa import FRESH_DEVICE_KEY, FRESH_KEY


def totp_device(user) -> AuthenticatorDevice:
    """A confirmed TOTP device for ``user`` (one per user is enough for tests)."""
    device = AuthenticatorDevice.objects.filter(user=user, confirmed=True).first()
    return device or AuthenticatorDevice.objects.create(user=user, name="test app", confirmed=True)


def totp_code(device: AuthenticatorDevice) -> str:
    import base64

    return pyotp.TOTP(base64.b32encode(device.bin_key).decode()).now()


def backup_codes(user, n: int = 10) -> list[str]:
    """``n`` fresh single-use backup codes for ``user``."""
    device, _ = BackupCodeDevice.objects.get_or_create(user=user, name="test backup", defaults={"confirmed": True})
    codes = [secrets.token_hex(5) for _ in range(n)]
    device.codes_add(codes)
    return codes


def verify_session(client, user, *, age_seconds: float = 0.0):
    """Log ``client`` in as ``user`` with a verified device, verified ``age_seconds`` ago."""
    device = totp_device(user)
    client.force_login(user, backend="jitad.accounts.backends.ThrottledModelBackend")
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session[FRESH_KEY] = time.time() - age_seconds
    session[FRESH_DEVICE_KEY] = device.persistent_id
    session.save()
    return device


def stale_age() -> float:
    """An age just past the fresh-MFA window."""
    return settings.JITAD_MFA_FRESH_SECONDS + 60
