"""REST API plumbing. Authentication and the ``otp`` rule (errors: jitad/accounts/api_errors.py).

Every state-changing call must carry a current OTP code in ``otp``, or a single-use passkey
step in ``mfa_step`` (jitad/accounts/passkey_steps.py), whatever authenticated it: a stolen
token alone cannot elevate anyone. An automation identity's token is held to its scopes and
signs its writes instead (jitad/accounts/automation_api.py). Errors always come back as
``{"code": "...", "detail": "..."}`` with a 4xx status.
"""
import logging

from rest_framework import exceptions, permissions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication, get_authorization_header

from .automation_api import automation_call_check
from .mfa import API_STEP, mfa_check_code, mfa_step_now
from .passkey_steps import passkey_step_take
from .services import api_token_authenticate

log = logging.getLogger(__name__)


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer jitad_<prefix>_<secret>`` (``Token`` is accepted too)."""

    keywords = (b"bearer", b"token")

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be 'Bearer <token>'.")
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The token is not valid.") from None
        token = api_token_authenticate(raw)
        if token is None:
            raise exceptions.AuthenticationFailed("The token is not valid, expired or was revoked.")
        if token.automation_id is not None:  # a column of the row just read: a person's call costs nothing more
            automation_call_check(request, token)
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="jitad"'


class VerifiedSessionAuthentication(SessionAuthentication):
    """The portal's session, for the browsable API, but only once MFA verified it."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, _ = result
        if not user.is_verified():
            return None
        return result


class OTPForUnsafeMethods(permissions.BasePermission):
    """Authenticated for reads; authenticated plus a valid ``otp`` code for every write."""

    message = "Authentication is required."

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        if getattr(request, "_jitad_otp_ok", False):  # the browsable API checks permissions twice
            return True
        code = request.data.get("otp", "") if hasattr(request.data, "get") else ""
        step = request.data.get("mfa_step", "") if hasattr(request.data, "get") else ""
        if not code and step:
            taken = passkey_step_take(user=request.user, api_token=request.auth if request.auth else None, raw=step)
            if taken is None:
                raise OTPRequired(detail="That MFA step is not valid: it was used already, has expired, or was made "
                                         "for another token. Verify your passkey again.", code="mfa_step_invalid")
            request._jitad_otp_ok = True
            setattr(request, API_STEP, taken)
            return True
        if not code:
            raise OTPRequired()
        check = mfa_check_code(request.user, str(code))
        if check.device is None:
            raise OTPRequired(detail=check.error, code="otp_invalid")
        request._jitad_otp_ok = True
        setattr(request, API_STEP, mfa_step_now(check.device))  # recorded on what this call creates or decides
        return True


class OTPRequired(exceptions.PermissionDenied):
    default_detail = ("This call changes state: send a current code from your authenticator app (or a backup code) in "
                      "'otp', or a passkey step from /api/v1/mfa/passkey/verify in 'mfa_step'.")
    default_code = "otp_required"
