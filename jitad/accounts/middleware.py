"""MFA is mandatory: every page but login and enrolment needs a verified device, and every
state-changing request needs a *fresh* verification.

One place enforces both, so a new view cannot forget. Requests that change state (POST,
PUT, PATCH, DELETE) from a session verified longer ago than JITAD_MFA_FRESH_SECONDS are
answered with a step-up page that asks for a code and re-submits the original form; a form
may also carry the code itself in a field named ``otp``. The REST API (/api/) does its own
authentication and demands ``otp`` on every state-changing call (jitad/accounts/api.py).
"""
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from .mfa import CHECKED_NOW, mfa_check_code, mfa_enrolled, mfa_is_fresh, mfa_mark_verified

SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")

# URL names reachable without a verified device (login, logout and the MFA steps).
PUBLIC = {"accounts:login", "accounts:logout", "health", "ready", "metrics", "admin:login", "admin:logout"}
UNVERIFIED_OK = {"accounts:mfa-verify", "accounts:mfa-enrol", "accounts:mfa-enrol-code",
                 "otp_webauthn:credential-authentication-begin", "otp_webauthn:credential-authentication-complete",
                 "otp_webauthn:js-i18n-catalog"}
# Passkey ceremonies prove possession themselves; a stale session may use them to refresh.
FRESHNESS_EXEMPT = {"accounts:logout", "accounts:mfa-verify", "admin:logout",
                    "otp_webauthn:credential-authentication-begin", "otp_webauthn:credential-authentication-complete"}
_NOT_REPOSTED = {"csrfmiddlewaretoken", "otp"}


def view_name(request) -> str:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None else ""


def is_api(request) -> bool:
    return request.path_info.startswith("/api/")


def _with_next(url: str, request):
    """Send the person to ``url`` and back; an htmx fragment request makes the whole page go there."""
    if getattr(request, "htmx", False):
        current = request.htmx.current_url_abs_path or "/"
        response = HttpResponse(status=204)
        response["HX-Redirect"] = f"{url}?{urlencode({'next': current})}"
        return response
    return HttpResponseRedirect(f"{url}?{urlencode({'next': request.get_full_path()})}")


class RejectNulMiddleware:
    """A query string with a NUL character is answered 400 before any view sees it.

    No legitimate search, filter or id holds NUL, PostgreSQL refuses it in text (a 500 if it
    got that far), and Samba would cut an LDAP filter at it. Forms already refuse it in bodies.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if any("\x00" in key or any("\x00" in v for v in values) for key, values in request.GET.lists()):
            message = "A query may not contain NUL characters."
            if request.path.startswith("/api/"):
                return JsonResponse({"code": "invalid", "detail": message}, status=400)
            return HttpResponseBadRequest(message)
        return self.get_response(request)


class MFARequiredMiddleware:
    """Place after django_otp's OTPMiddleware and Django's CsrfViewMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        # Pages and API answers are about people's access: no browser or proxy keeps them.
        if not response.has_header("Cache-Control") and not self._static(request):
            add_never_cache_headers(response)
        return response

    @staticmethod
    def _static(request) -> bool:
        return request.path_info.startswith("/" + settings.STATIC_URL.lstrip("/"))

    def process_view(self, request, view_func, view_args, view_kwargs):
        if self._static(request) or is_api(request):
            return None
        name = view_name(request)
        if name in PUBLIC:
            return None
        user = request.user
        if not user.is_authenticated:
            return _with_next(reverse("accounts:login"), request)
        if not user.is_verified():
            if name in UNVERIFIED_OK:
                return None
            if mfa_enrolled(user):
                return _with_next(reverse("accounts:mfa-verify"), request)
            return _with_next(reverse("accounts:mfa-enrol"), request)
        if request.method in SAFE_METHODS or name in FRESHNESS_EXEMPT or mfa_is_fresh(request):
            return None
        code = request.POST.get("otp", "")
        error = ""
        if code:
            check = mfa_check_code(user, code)
            if check.device is not None:
                mfa_mark_verified(request, check.device)
                setattr(request, CHECKED_NOW, check.device)  # the view may ask whether a code came with this request
                return None
            error = check.error
        fields = [(k, v) for k, values in request.POST.lists() if k not in _NOT_REPOSTED for v in values]
        return render(
            request,
            "accounts/step_up.html",
            {"fields": fields, "action": request.get_full_path(), "error": error,
             "window_minutes": settings.JITAD_MFA_FRESH_SECONDS // 60},
            status=403,
        )
