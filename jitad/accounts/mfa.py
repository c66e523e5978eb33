"""MFA state of a session: which device verified it, when, and checking a code again.

django-otp records *which* device verified a session; jitad also records *when*, so a
privileged step can demand a verification younger than JITAD_MFA_FRESH_SECONDS. A session
verified by a path that did not record the time counts as stale, never as fresh.
"""
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from django.conf import settings
from django.db import transaction
from django.utils.cache import add_never_cache_headers
from django_otp import DEVICE_ID_SESSION_KEY, devices_for_user
from django_otp import login as otp_login

from jitad import metrics

from .devices import AuthenticatorDevice, BackupCode, BackupCodeDevice
from .throttle import login_source_remember

FRESH_KEY = "jitad_mfa_verified_at"
FRESH_DEVICE_KEY = "jitad_mfa_device"
BACKUP_DEVICE_NAME = "backup codes"
BACKUP_CODE_COUNT = 10
_TOTP_RE = re.compile(r"^[0-9]{6,8}$")
_BACKUP_RE = re.compile(r"^[a-z0-9]{6,16}$")


@dataclass
class CodeCheck:
    """The outcome of checking a code: the device that took it, or why none did."""

    device: object | None = None
    error: str = ""


def mfa_mark_verified(request, device) -> None:
    """Record that ``device`` verified this session now (django-otp's login plus a timestamp).

    The session gets a new key: a cookie captured between the password and the MFA step
    must not become a verified session.
    """
    request.session.cycle_key()
    otp_login(request, device)
    request.session[FRESH_KEY] = time.time()
    request.session[FRESH_DEVICE_KEY] = device.persistent_id
    # A whole login from here: the login throttle counts this address as the person's own.
    login_source_remember(request=request, user=device.user)


def mfa_age_seconds(request) -> float | None:
    """Seconds since this session's last verification, or None if unverified or unrecorded."""
    session = getattr(request, "session", None)
    if session is None or not session.get(DEVICE_ID_SESSION_KEY):
        return None
    at = session.get(FRESH_KEY)
    if at is None or session.get(FRESH_DEVICE_KEY) != session.get(DEVICE_ID_SESSION_KEY):
        return None
    return max(0.0, time.time() - float(at))


def mfa_is_fresh(request) -> bool:
    """True if this session was verified within the fresh-MFA window."""
    user = getattr(request, "user", None)
    is_verified = getattr(user, "is_verified", None)  # absent on a user DRF authenticated by token
    if user is None or not user.is_authenticated or is_verified is None or not is_verified():
        return False
    age = mfa_age_seconds(request)
    return age is not None and age <= settings.JITAD_MFA_FRESH_SECONDS


def mfa_has_code_device(user) -> bool:
    """True if ``user`` can type a code (TOTP or a backup code), which the API needs."""
    return AuthenticatorDevice.objects.filter(user=user, confirmed=True).exists() or BackupCode.objects.filter(
        device__user=user, device__confirmed=True
    ).exists()


def _throttled(device) -> str:
    allowed, info = device.verify_is_allowed()
    if allowed:
        return ""
    until = (info or {}).get("locked_until")
    if until is not None:
        from django.utils import timezone

        wait = max(1, int((until - timezone.now()).total_seconds()) + 1)
        return f"Too many wrong codes. Wait {wait} seconds and try again."
    return "Too many wrong codes. Wait a little and try again."


def mfa_check_code(user, code: str) -> CodeCheck:
    """Check a TOTP or backup code against ``user``'s confirmed devices (django-otp throttling applies).

    Six to eight digits are tried against authenticator apps, anything else against backup
    codes, so a mistyped code counts against one kind of device only.
    """
    code = (code or "").strip().replace(" ", "").replace("-", "").lower()
    if not code:
        return CodeCheck(error="Enter the code from your authenticator app or a backup code.")
    if _TOTP_RE.match(code):
        model = AuthenticatorDevice
    elif _BACKUP_RE.match(code):
        model = BackupCodeDevice
    else:
        return CodeCheck(error="That is not a valid code: 6 digits from your app, or a backup code.")
    throttle_message = vault_message = ""
    with transaction.atomic():
        for device in model.objects.devices_for_user(user, confirmed=True).select_for_update():
            reason = _throttled(device)
            if reason:
                throttle_message = reason
                continue
            if device.verify_token(code):
                return CodeCheck(device=device)
            if device.vault_error:
                vault_message = ("Your code cannot be checked: the server cannot open the stored MFA secret (a vault key "
                                 "is missing). Tell an administrator; another device may still work.")
    metrics.count(metrics.mfa_failures, device="totp" if model is AuthenticatorDevice else "backup",
                  reason="vault" if vault_message else "throttled" if throttle_message else "wrong_code")
    return CodeCheck(error=vault_message or throttle_message
                     or "That code is not right. Check your device's clock and try again.")


def mfa_devices(user) -> list:
    """Every confirmed device of ``user`` (TOTP, backup codes, passkeys)."""
    return list(devices_for_user(user, confirmed=True))


def mfa_enrolled(user) -> bool:
    return bool(mfa_devices(user))


CHECKED_NOW = "_jitad_mfa_checked_now"


def mfa_code_in_request(request) -> CodeCheck:
    """A code typed into this very request, checked (or already checked by the middleware this request).

    For the steps that must prove possession at the moment they happen (asking for and
    revealing a break-glass password), a session that is merely still fresh is not enough.
    """
    device = getattr(request, CHECKED_NOW, None)
    if device is not None:
        return CodeCheck(device=device)
    check = mfa_check_code(request.user, request.POST.get("otp", ""))
    if check.device is not None:
        mfa_mark_verified(request, check.device)
        setattr(request, CHECKED_NOW, check.device)
    return check


API_STEP = "_jitad_mfa_step"


@dataclass(frozen=True)
class MfaStep:
    """A verified MFA step behind a privileged action: the factor (totp, webauthn, backup_code) and when."""

    method: str
    verified_at: datetime


def mfa_method_of(device) -> str:
    """The factor a django-otp device stands for: ``totp``, ``backup_code``, ``webauthn`` (else its model name)."""
    if isinstance(device, AuthenticatorDevice):
        return "totp"
    if isinstance(device, BackupCodeDevice):
        return "backup_code"
    name = type(device).__name__.lower()
    return "webauthn" if "webauthn" in name else name


def mfa_step_of(request) -> "MfaStep | None":
    """The verified MFA step behind this request: a code checked in this very call (API or step-up),
    else the session's recorded verification; None when nothing verified is recorded.

    The time is when the verification happened, so a reader can tell how fresh it was.
    """
    step = getattr(request, API_STEP, None)
    if step is not None:
        return step
    device = getattr(request, CHECKED_NOW, None)
    session = getattr(request, "session", None)
    if device is None and session is not None and mfa_age_seconds(request) is not None:
        device = getattr(getattr(request, "user", None), "otp_device", None)
    if device is None:
        return None
    at = session.get(FRESH_KEY) if session is not None else None
    when = datetime.fromtimestamp(float(at), tz=timezone.utc) if at is not None else datetime.now(tz=timezone.utc)
    return MfaStep(method=mfa_method_of(device), verified_at=when)


def mfa_step_fields(step: "MfaStep | None") -> dict:
    """The model fields recording ``step`` (``mfa_method`` "" and ``mfa_verified_at`` None when there is none)."""
    return {"mfa_method": step.method if step else "", "mfa_verified_at": step.verified_at if step else None}


def mfa_step_audit(step: "MfaStep | None") -> dict:
    """The audit data recording ``step``."""
    return {"mfa_method": step.method if step else "", "mfa_verified_at": step.verified_at.isoformat() if step else None}


def mfa_step_now(device) -> MfaStep:
    """The step of ``device`` verifying a code just now (the REST API's ``otp`` on a write)."""
    return MfaStep(method=mfa_method_of(device), verified_at=datetime.now(tz=timezone.utc))


def no_store(response):
    """A page that shows a secret after an MFA step: nothing keeps it (browser cache, history snapshot, proxy)."""
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, private, max-age=0"
    response["Pragma"] = "no-cache"
    response["Expires"] = "0"
    response["Referrer-Policy"] = "no-referrer"
    return response
