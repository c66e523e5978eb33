"""Audit logins and refused logins; record when an OTP-aware login (the admin's) verified a device."""
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from jitad import metrics

from . import throttle
from .backends import THROTTLED
from .mfa import mfa_mark_verified
from .services import account_logged_in, account_login_failed


def _addr(request) -> str:
    return throttle.client_ip(request)[:64]


@receiver(user_logged_in)
def _on_login(sender, request, user, **kwargs):
    device = getattr(user, "otp_device", None)
    if device is not None and request is not None:
        # The admin's login form verified a device in the same step (django-otp's form).
        mfa_mark_verified(request, device)
    method = "directory" if hasattr(user, "directory_account") else "local"
    metrics.count(metrics.logins, method=method)
    account_logged_in(user=user, method=method, remote_addr=_addr(request))


@receiver(user_login_failed)
def _on_login_failed(sender, credentials, request=None, **kwargs):
    reason = getattr(request, "jitad_login_error", "") or "invalid_credentials"
    metrics.count(metrics.login_failures, reason=reason[:64])
    if reason in THROTTLED:
        return  # refused unchecked during a pause: audited once per pause (throttle), not once per attempt
    username = str(credentials.get("username", ""))
    account_login_failed(username=username, reason=reason, remote_addr=_addr(request))
    if reason in ("directory_unavailable", "directory_misconfigured"):  # no password was checked
        throttle.login_attempt_void(request=request)
    else:
        throttle.login_failure_record(request=request, username=username)
