"""The passkey step for the REST API, its services: a challenge kept on the server, the assertion checked,
a single-use step given out (hashed at rest) and taken by one write (the API: jitad/accounts/passkey_api.py).

The assertion is checked by django-otp-webauthn, exactly as the portal's passkey login
checks it (rp id, allowed origins, signature, sign count); only the challenge's keeping
differs, since a token caller has no session.
"""
import hashlib
import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_otp_webauthn import exceptions as webauthn_errors
from django_otp_webauthn.settings import app_settings as webauthn_settings
from django_otp_webauthn.utils import get_credential_model
from rest_framework import exceptions
from webauthn.helpers.exceptions import WebAuthnException

from jitad.audit.services import audit_record

from .mfa import MfaStep
from .models import ApiMfaStep, ApiToken

log = logging.getLogger(__name__)
STEP_PREFIX = "jitad_mfa_"
KEEP_ROWS = timedelta(days=1)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _helper(request):
    return get_credential_model().get_webauthn_helper(request=request)


def passkey_step_begin(*, request, user, api_token: ApiToken | None) -> dict:
    """WebAuthn assertion options for ``user``'s passkeys; the challenge is kept for ``verify``."""
    if not get_credential_model().objects.filter(user=user, confirmed=True).exists():
        raise exceptions.PermissionDenied("You have no passkey registered.", code="no_passkey")
    options, state = _helper(request).authenticate_begin(user=user, require_user_verification=False)
    with transaction.atomic():
        # Rows of answered, used or abandoned steps are of no use after a day; a new challenge replaces any
        # unanswered one of the same caller, so asking for options again and again keeps one row.
        ApiMfaStep.objects.filter(user=user, created_at__lt=timezone.now() - KEEP_ROWS).delete()
        ApiMfaStep.objects.filter(user=user, api_token=api_token, verified_at__isnull=True).delete()
        ApiMfaStep.objects.create(user=user, api_token=api_token, challenge=state["challenge"])
    return options


def _refuse(user, api_token, reason: str, code: str):
    with transaction.atomic():
        audit_record(actor=user.get_username(), action="mfa.api_step_refused", object_type="user", object_id=user.pk,
                     reason=reason, data={"kind": "webauthn", "token": api_token.prefix if api_token else ""})
    raise exceptions.PermissionDenied(reason, code=code)


def passkey_step_verify(*, request, user, api_token: ApiToken | None, data: dict) -> tuple[str, ApiMfaStep]:
    """Check the assertion against the newest open challenge; the opaque step and its row.

    The challenge is taken out before the check: a challenge is answered once, right or wrong.
    """
    oldest = timezone.now() - timedelta(seconds=webauthn_settings.OTP_WEBAUTHN_TIMEOUT_SECONDS + 30)
    with transaction.atomic():
        row = (ApiMfaStep.objects.select_for_update()
               .filter(user=user, api_token=api_token, verified_at__isnull=True, created_at__gte=oldest)
               .exclude(challenge="").order_by("-created_at", "-pk").first())
        if row is not None:
            challenge = row.challenge
            row.challenge = ""
            row.save(update_fields=["challenge"])
    if row is None:
        _refuse(user, api_token, "No passkey challenge is open: ask for options first.", "mfa_challenge_missing")
    try:
        device = _helper(request).authenticate_complete(
            user=user, state={"challenge": challenge, "require_user_verification": False}, data=data)
    except (WebAuthnException, webauthn_errors.OTPWebAuthnApiError, KeyError, TypeError, ValueError) as e:
        log.info("API passkey step of user %s refused: %s", user.pk, e)
        _refuse(user, api_token, "The passkey assertion is not valid.", "mfa_step_refused")
    if not device.confirmed or not device.user.is_active:
        _refuse(user, api_token, "That passkey may not be used.", "mfa_step_refused")
    raw = STEP_PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        row.device = device.persistent_id
        row.verified_at = now
        row.digest = _digest(raw)
        row.expires_at = now + timedelta(seconds=settings.JITAD_MFA_FRESH_SECONDS)
        row.save(update_fields=["device", "verified_at", "digest", "expires_at"])
        audit_record(actor=user.get_username(), action="mfa.api_step_verified", object_type="otp_device",
                     object_id=device.persistent_id, after="verified",
                     data={"kind": "webauthn", "token": api_token.prefix if api_token else "",
                           "expires_at": row.expires_at.isoformat()})
    return raw, row


def passkey_step_take(*, user, api_token: ApiToken | None, raw: str) -> MfaStep | None:
    """Use the step ``raw`` once for a write by ``user`` through ``api_token``; None if it is not good."""
    if not isinstance(raw, str) or not raw.startswith(STEP_PREFIX) or len(raw) > 128:
        return None
    now = timezone.now()
    live = ApiMfaStep.objects.filter(digest=_digest(raw), user=user, api_token=api_token,
                                     used_at__isnull=True, expires_at__gt=now)
    row = live.first()
    # The update is the "used once": of two writes racing with one step, only one changes the row.
    if row is None or not live.filter(pk=row.pk).update(used_at=now):
        return None
    return MfaStep(method="webauthn", verified_at=row.verified_at)
