"""Login, MFA verification and enrolment, the security page (devices, API tokens), logout."""
import base64

import segno
from django.contrib import messages
from django.contrib.auth import authenticate
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

from .backends import MESSAGES
from .forms import CodeForm, EnrolForm, LoginForm, TokenCreateForm
from .mfa import mfa_check_code, mfa_enrolled, mfa_is_fresh, mfa_mark_verified
from .models import ApiToken
from .services import api_token_create, api_token_revoke, backup_codes_generate, mfa_device_remove, totp_enrol_begin, totp_enrol_confirm

_ONCE_CODES = "jitad_backup_codes_once"
_ONCE_TOKEN = "jitad_api_token_once"
_ENROL_DEVICE = "jitad_enrol_device"


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
        error = MESSAGES.get(getattr(request, "jitad_login_error", ""), MESSAGES["invalid_credentials"])
    status = 200
    if request.method == "POST":
        status = 401 if error else 400
    return render(request, "accounts/login.html", {"form": form, "error": error, "next": _next(request, "")}, status=status)


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
        "has_code_device": TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        or StaticToken.objects.filter(device__user=user).exists(),
        "has_passkey": WebAuthnCredential.objects.filter(user=user, confirmed=True).exists(),
        "reverify": user.is_verified(),
    }
    return render(request, "accounts/verify.html", context, status=400 if request.method == "POST" else 200)


@never_cache
@require_http_methods(["GET", "POST"])
def mfa_enrol(request):
    """TOTP enrolment: QR code and secret in the page; the device counts once a code confirms it."""
    user = request.user
    if mfa_enrolled(user) and not user.is_verified():
        return redirect(_with_next("accounts:mfa-verify", request))
    device = totp_enrol_begin(user=user, device_id=request.session.get(_ENROL_DEVICE))
    request.session[_ENROL_DEVICE] = device.pk
    form = EnrolForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        if totp_enrol_confirm(user=user, device=device, code=form.cleaned_data["code"]):
            request.session.pop(_ENROL_DEVICE, None)
            mfa_mark_verified(request, device)
            if not StaticDevice.objects.filter(user=user).exists():
                request.session[_ONCE_CODES] = backup_codes_generate(user=user)
                return redirect(_with_next("accounts:backup-codes", request))
            messages.success(request, "Your authenticator app is set up.")
            return redirect(_next(request))
        error = "That code is not right. Scan the QR code again, check your device's clock, and enter the current code."
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
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
def backup_codes(request):
    """Backup codes: shown once after they are made; regenerating replaces the old set."""
    if request.method == "POST":
        request.session[_ONCE_CODES] = backup_codes_generate(user=request.user)
        return redirect(_with_next("accounts:backup-codes", request))
    codes = request.session.pop(_ONCE_CODES, None)
    if codes is None and not request.user.is_verified():
        return redirect(_with_next("accounts:mfa-verify", request))
    remaining = StaticToken.objects.filter(device__user=request.user).count()
    return render(request, "accounts/backup_codes.html", {"codes": codes, "remaining": remaining, "next": _next(request)})


def _devices(user):
    rows = []
    for d in TOTPDevice.objects.filter(user=user, confirmed=True):
        rows.append({"kind": "Authenticator app", "name": d.name, "id": d.persistent_id, "last_used": d.last_used_at, "created": d.created_at})
    for d in StaticDevice.objects.filter(user=user, confirmed=True):
        rows.append({"kind": "Backup codes", "name": f"{d.token_set.count()} left", "id": d.persistent_id,
                     "last_used": d.last_used_at, "created": d.created_at})
    for d in WebAuthnCredential.objects.filter(user=user, confirmed=True):
        rows.append({"kind": "Passkey", "name": d.name or "passkey", "id": d.persistent_id, "last_used": d.last_used_at, "created": d.created_at})
    return rows


@never_cache
def security(request):
    """Devices and API tokens of the signed-in person."""
    context = {
        "devices": _devices(request.user),
        "tokens": ApiToken.objects.filter(user=request.user),
        "token_form": TokenCreateForm(),
        "new_token": request.session.pop(_ONCE_TOKEN, None),
        "fresh": mfa_is_fresh(request),
    }
    return render(request, "accounts/security.html", context)


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
    request.session[_ONCE_TOKEN] = raw
    return redirect("accounts:security")


@require_POST
def token_revoke(request, pk: int):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    api_token_revoke(token=token, actor=request.user)
    messages.success(request, f"Token '{token.name}' revoked.")
    return redirect("accounts:security")


def health(request):
    return HttpResponse("ok", content_type="text/plain")
