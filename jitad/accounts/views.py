"""Login, MFA verification and enrolment, the security page (devices, API tokens), logout."""
import base64
import json
import logging

import segno
from django.contrib import messages
from django.contrib.auth import authenticate
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.cache import add_never_cache_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from jitad import vault
from jitad.vault import VaultError

from .backends import THROTTLED, login_error_message
from .enrolment import enrolment_code_held, enrolment_code_redeem, enrolment_code_required
from .forms import CodeForm, EnrolForm, EnrolmentCodeForm, LoginForm, TokenCreateForm
from .mfa import mfa_check_code, mfa_enrolled, mfa_has_code_device, mfa_is_fresh, mfa_mark_verified
from .models import ApiToken
from .selectors import api_tokens_of, backup_codes_left, has_backup_codes, has_passkey, mfa_devices_of
from .services import api_token_create, api_token_revoke, backup_codes_generate, mfa_device_remove, totp_enrol_begin, totp_enrol_confirm

log = logging.getLogger(__name__)
_ONCE_CODES = "jitad_backup_codes_once"
_ONCE_TOKEN = "jitad_api_token_once"
_ENROL_DEVICE = "jitad_enrol_device"
_ENROL_CODE = "jitad_enrolment_code"


def _once_put(request, name: str, value) -> None:
    """Keep a secret shown once (backup codes, a new API token) for the next page, sealed.

    The session is stored in the database until the next page takes the secret out, or
    for good if that page is never opened: it holds only the vault's ciphertext, bound
    to the person, never the secret.
    """
    ref = f"session-once:{name}:user:{request.user.pk}"
    request.session[name] = vault.seal(ref=ref, plaintext=json.dumps(value).encode())


def _once_take(request, name: str):
    """The secret ``_once_put`` kept, removed from the session; None if there is none or it does not open."""
    token = request.session.pop(name, None)
    if not isinstance(token, str):
        return None
    try:
        return json.loads(vault.unseal(ref=f"session-once:{name}:user:{request.user.pk}", token=token))
    except VaultError as e:
        log.warning("A secret to show once to user %s did not open: %s", request.user.pk, e)
        return None


def _next(request, default: str = "") -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default or reverse("elevation:access")


def _with_next(name: str, request) -> str:
    from urllib.parse import urlencode

    return f"{reverse(name)}?{urlencode({'next': _next(request)})}"


@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request):
    """Step one: the AD (or local) password. Step two is the MFA page."""
    if request.user.is_authenticated and request.user.is_verified():
        return redirect(_next(request))
    form = LoginForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        user = authenticate(request, username=form.cleaned_data["username"], password=form.cleaned_data["password"])
        if user is not None:
            auth_login(request, user)
            step = "accounts:mfa-verify" if mfa_enrolled(user) else "accounts:mfa-enrol"
            return redirect(_with_next(step, request))
        error = login_error_message(request)
    status = 200
    if request.method == "POST":
        status = 401 if error else 400
    paused = getattr(request, "jitad_login_error", "") in THROTTLED
    response = render(request, "accounts/login.html", {"form": form, "error": error, "next": _next(request, "")},
                      status=429 if paused else status)
    if paused:
        response["Retry-After"] = str(request.jitad_login_wait)
    return response


@require_POST
def logout_view(request):
    auth_logout(request)
    messages.info(request, "You are logged out.")
    return redirect("accounts:login")


@never_cache
@require_http_methods(["GET", "POST"])
def mfa_verify(request):
    """Step two, and the re-verification a privileged step asks for when MFA is no longer fresh."""
    user = request.user
    if not mfa_enrolled(user):
        return redirect(_with_next("accounts:mfa-enrol", request))
    form = CodeForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        check = mfa_check_code(user, form.cleaned_data["otp"])
        if check.device is not None:
            mfa_mark_verified(request, check.device)
            return redirect(_next(request))
        error = check.error
    context = {
        "form": form,
        "error": error,
        "next": _next(request),
        "has_code_device": mfa_has_code_device(user),
        "has_passkey": has_passkey(user=user),
        "reverify": user.is_verified(),
    }
    return render(request, "accounts/verify.html", context, status=400 if request.method == "POST" else 200)


@never_cache
@require_http_methods(["GET", "POST"])
def mfa_enrol(request):
    """TOTP enrolment: QR code and secret in the page; the device counts once a code confirms it.

    The key is shown only to the session that started this enrolment and only until it is
    confirmed; afterwards it exists only sealed in the vault and no page shows it again.
    """
    user = request.user
    if mfa_enrolled(user) and not user.is_verified():
        return redirect(_with_next("accounts:mfa-verify", request))
    # No key is made or shown before the service desk's code: a stolen password sees nothing here.
    code_id = request.session.get(_ENROL_CODE)
    if enrolment_code_required(user) and enrolment_code_held(user=user, code_id=code_id) is None:
        return redirect(_with_next("accounts:mfa-enrol-code", request))
    try:
        device = totp_enrol_begin(user=user, device_id=request.session.get(_ENROL_DEVICE))
        secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    except VaultError as e:
        log.error("MFA enrolment of user %s impossible: %s", user.pk, e)
        return render(request, "accounts/enrol.html", {"vault_down": True, "first": not mfa_enrolled(user)}, status=503)
    request.session[_ENROL_DEVICE] = device.pk
    form = EnrolForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        if totp_enrol_confirm(user=user, device=device, code=form.cleaned_data["code"], enrolment_code_id=code_id):
            request.session.pop(_ENROL_DEVICE, None)
            request.session.pop(_ENROL_CODE, None)
            mfa_mark_verified(request, device)
            if not has_backup_codes(user=user):
                _once_put(request, _ONCE_CODES, backup_codes_generate(user=user))
                return redirect(_with_next("accounts:backup-codes", request))
            messages.success(request, "Your authenticator app is set up.")
            return redirect(_next(request))
        error = "That code is not right. Scan the QR code again, check your device's clock, and enter the current code."
    qr = segno.make(device.config_url, error="m")
    context = {
        "form": form,
        "error": error,
        "secret": secret,
        "secret_grouped": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        "qr_svg": qr.svg_inline(scale=5, dark="#111", light="#fff", omitsize=True, title="QR code for your authenticator app"),
        "next": _next(request),
        "first": not mfa_enrolled(user),
    }
    return render(request, "accounts/enrol.html", context, status=400 if request.method == "POST" else 200)


@never_cache
@require_http_methods(["GET", "POST"])
def mfa_enrol_code(request):
    """Before a first enrolment (JITAD_ENROLMENT_CODE_REQUIRED): the one-time code the service desk gave the person.

    A right code is used up at once and this session (only this one) may then enrol.
    """
    user = request.user
    if not enrolment_code_required(user) or enrolment_code_held(user=user, code_id=request.session.get(_ENROL_CODE)):
        return redirect(_with_next("accounts:mfa-enrol", request))
    form = EnrolmentCodeForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        check = enrolment_code_redeem(user=user, raw=form.cleaned_data["enrolment_code"])
        if check.code is not None:
            request.session.cycle_key()  # a cookie captured before the code must not inherit what it opens
            request.session[_ENROL_CODE] = check.code.pk
            return redirect(_with_next("accounts:mfa-enrol", request))
        error = check.error
    return render(request, "accounts/enrol_code.html", {"form": form, "error": error, "next": _next(request)},
                  status=400 if request.method == "POST" else 200)


@never_cache
@require_http_methods(["GET", "POST"])
def backup_codes(request):
    """Backup codes: shown once after they are made; regenerating replaces the old set."""
    if request.method == "POST":
        _once_put(request, _ONCE_CODES, backup_codes_generate(user=request.user))
        return redirect(_with_next("accounts:backup-codes", request))
    codes = _once_take(request, _ONCE_CODES)
    if codes is None and not request.user.is_verified():
        return redirect(_with_next("accounts:mfa-verify", request))
    remaining = backup_codes_left(user=request.user)
    return render(request, "accounts/backup_codes.html", {"codes": codes, "remaining": remaining, "next": _next(request)})


def _security_page(request, new_token):
    context = {
        "devices": mfa_devices_of(user=request.user),
        "tokens": api_tokens_of(user=request.user),
        "token_form": TokenCreateForm(),
        "new_token": new_token,
        "fresh": mfa_is_fresh(request),
    }
    return render(request, "accounts/security.html", context)


@never_cache
def security(request):
    """Devices and API tokens of the signed-in person."""
    return _security_page(request, _once_take(request, _ONCE_TOKEN))


@require_POST
def device_remove(request):
    from django_otp.models import Device

    device = Device.from_persistent_id(request.POST.get("device", ""))
    if device is None or device.user_id != request.user.pk:
        messages.error(request, "That device does not exist.")
        return redirect("accounts:security")
    try:
        mfa_device_remove(user=request.user, device=device)
    except ValueError as e:
        messages.error(request, str(e))
    else:
        messages.success(request, "Device removed.")
    return redirect("accounts:security")


@require_POST
def token_create(request):
    form = TokenCreateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the token a name and an expiry.")
        return redirect("accounts:security")
    _token, raw = api_token_create(user=request.user, name=form.cleaned_data["name"], days=form.cleaned_data["days"])
    try:
        _once_put(request, _ONCE_TOKEN, raw)
    except VaultError as e:
        # No vault to seal it for the next page: show it in this answer, which no cache keeps.
        log.error("The new API token of user %s is shown without a redirect: %s", request.user.pk, e)
        response = _security_page(request, raw)
        add_never_cache_headers(response)
        return response
    return redirect("accounts:security")


@require_POST
def token_revoke(request, pk: int):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    api_token_revoke(token=token, actor=request.user)
    messages.success(request, f"Token '{token.name}' revoked.")
    return redirect("accounts:security")
