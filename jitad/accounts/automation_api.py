"""An automation identity's API call: its scopes, its targets, and the signature that stands for MFA on a write.

Run by ApiTokenAuthentication for tokens of an automation identity only (a person's call does
not reach this module). A write (POST, PUT, PATCH, DELETE) must carry three headers:

    X-Jitad-Timestamp: <Unix seconds>
    X-Jitad-Nonce: <16 to 64 of A-Z a-z 0-9 - _, never used before by this identity>
    X-Jitad-Signature: <base64url Ed25519 signature of the message below>

    jitad-request-v1\\n<METHOD>\\n<path and query as sent>\\n<timestamp>\\n<nonce>\\n<token prefix>\\n<Content-Type>\\n<hex SHA-256 of the body>

<Content-Type> is the request's Content-Type header as sent (parameters included), stripped and
lowercased, or an empty line without one: the body is read as the type says (JSON, a form), so
the type is signed with the bytes. The key is the identity's own (``AutomationIdentity.public_key``;
the private key stays where the identity runs). A signature counts once (its nonce is kept while
its timestamp is within SIGNATURE_WINDOW_SECONDS of the server's clock), for this token, method,
path, type and body only. Every refused signature is counted (``jitad_mfa_failures``, device
``signature``) and audited under the identity's name; a replayed one is alerted
(``automation_signature_refused``). Why a signature and not a TOTP code: docs/mfa.md,
"Automation identities".
"""
import base64
import hashlib
import re
from datetime import datetime, timezone as dt_timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import IntegrityError, transaction
from django.http.request import RawPostDataException
from django.utils import timezone
from rest_framework import exceptions

from .automation import REPLAYED, SCOPES, automation_signature_refused
from .mfa import API_STEP, MfaStep
from .models import AutomationIdentity, AutomationNonce

SIGNATURE_WINDOW_SECONDS = 300
SAFE = ("GET", "HEAD", "OPTIONS")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_STAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit() takes "²", which int() refuses
SIGNED = "signed_request"  # the MFA method recorded on what a signed write creates or decides


class AutomationRefusal(exceptions.PermissionDenied):
    default_code = "automation_scope"


class SignatureRefused(exceptions.PermissionDenied):
    """A signed write refused: ``code`` for the client (signature_required, signature_invalid, signature_replayed),
    ``reason`` the finer cause counted and audited (the code itself, or no_key, timestamp_invalid, nonce_invalid,
    body_unreadable)."""

    def __init__(self, detail: str, *, code: str, reason: str = ""):
        super().__init__(detail, code=code)
        self.reason = reason or code


def signed_message(*, method: str, path: str, timestamp: str, nonce: str, prefix: str, content_type: str,
                   body: bytes) -> bytes:
    """The bytes an automation identity signs for one call (the client builds the same)."""
    return "\n".join(["jitad-request-v1", method.upper(), path, timestamp, nonce, prefix, content_type.strip().lower(),
                      hashlib.sha256(body).hexdigest()]).encode()


def automation_caller(request) -> bool:
    """True when ``request`` was authenticated with an automation identity's token (no query: a column of the token)."""
    return getattr(getattr(request, "auth", None), "automation_id", None) is not None


def automation_call_check(request, token) -> None:
    """Refuse ``request`` unless the identity behind ``token`` may make it; a write must be signed.

    On a signed write the request carries the MFA step (``signed_request``, now) that
    jitad/accounts/api.py's OTP rule then accepts, as it accepts a checked code.
    """
    identity = AutomationIdentity.objects.filter(pk=token.automation_id).first()
    if identity is None:
        raise exceptions.AuthenticationFailed("The token is not valid, expired or was revoked.")
    django_request = getattr(request, "_request", request)
    match = getattr(django_request, "resolver_match", None)
    view = match.view_name if match is not None else ""
    method = "GET" if request.method == "HEAD" else request.method
    allowed = {scope for scope in identity.scopes if (method, view) in SCOPES.get(scope, ())}
    if not allowed:
        raise AutomationRefusal(f"This automation identity may not call {request.method} {django_request.path} "
                                f"(its scopes: {', '.join(identity.scopes) or 'none'}).")
    if method in SAFE:
        return
    try:
        _signature_check(django_request, identity, token)
    except SignatureRefused as e:
        automation_signature_refused(identity=identity, token=token, reason=e.reason, code=_code(e),
                                     method=django_request.method, path=django_request.get_full_path(),
                                     nonce=django_request.headers.get("X-Jitad-Nonce", "") if e.reason == REPLAYED else "")
        raise
    if view == "api:requests" and method == "POST":
        target = request.data.get("target") if hasattr(request.data, "get") else None
        if not isinstance(target, str) or target.strip() not in identity.targets:
            raise AutomationRefusal(f"This automation identity may request only {', '.join(identity.targets)}, by name.",
                                    code="automation_target")
    setattr(request, API_STEP, MfaStep(method=SIGNED, verified_at=datetime.now(tz=dt_timezone.utc)))
    request._jitad_otp_ok = True


def automation_target_check(request, *, target_name: str) -> None:
    """For a call about an existing grant (an extension): refuse it when the caller is an automation identity whose
    targets no longer name the grant's target (narrowed since it asked). A person's call passes untouched."""
    token = getattr(request, "auth", None)
    if getattr(token, "automation_id", None) is None:
        return
    identity = AutomationIdentity.objects.filter(pk=token.automation_id).first()
    if identity is None or target_name not in identity.targets:
        raise AutomationRefusal(f"This automation identity may act only on {', '.join(identity.targets if identity else [])}, "
                                "by name.", code="automation_target")


def _code(e: exceptions.APIException) -> str:
    codes = e.get_codes()
    return codes if isinstance(codes, str) else "signature_invalid"


def _content_type(django_request) -> str:
    """The Content-Type the body will be parsed as: DRF's own reading (``Request.content_type``), which falls back
    to an HTTP_CONTENT_TYPE header when there is no Content-Type, so what is signed is what chooses the parser."""
    meta = django_request.META
    return meta.get("CONTENT_TYPE", meta.get("HTTP_CONTENT_TYPE", ""))


def _body(django_request) -> bytes:
    try:
        return django_request.body
    except RawPostDataException:  # something read the stream first: nothing to check the signature against
        raise SignatureRefused("The request body cannot be checked against its signature.", code="signature_invalid",
                               reason="body_unreadable") from None


def _signature_check(django_request, identity, token) -> None:
    headers = django_request.headers
    stamp, nonce, signature = (headers.get("X-Jitad-Timestamp", ""), headers.get("X-Jitad-Nonce", ""),
                               headers.get("X-Jitad-Signature", ""))
    if not (stamp and nonce and signature):
        raise SignatureRefused("An automation identity signs every call that changes state: send "
                               "X-Jitad-Timestamp, X-Jitad-Nonce and X-Jitad-Signature (docs/mfa.md).",
                               code="signature_required")
    if not identity.public_key:
        raise SignatureRefused("This automation identity has no signing key yet: an operator sets one "
                               "(manage.py jitad_automation key).", code="signature_invalid", reason="no_key")
    if not _STAMP.fullmatch(stamp) or abs(timezone.now().timestamp() - int(stamp)) > SIGNATURE_WINDOW_SECONDS:
        raise SignatureRefused(f"X-Jitad-Timestamp must be the current Unix time (within "
                               f"{SIGNATURE_WINDOW_SECONDS} seconds of the server's).", code="signature_invalid",
                               reason="timestamp_invalid")
    if not _NONCE.fullmatch(nonce):
        raise SignatureRefused("X-Jitad-Nonce must be 16 to 64 of A-Z, a-z, 0-9, '-' and '_'.",
                               code="signature_invalid", reason="nonce_invalid")
    message = signed_message(method=django_request.method, path=django_request.get_full_path(), timestamp=stamp,
                             nonce=nonce, prefix=token.prefix, content_type=_content_type(django_request),
                             body=_body(django_request))
    try:
        key = Ed25519PublicKey.from_public_bytes(_b64(identity.public_key))
        key.verify(_b64(signature), message)
    except (InvalidSignature, ValueError):
        raise SignatureRefused("The signature does not match this call (method, path, Content-Type, body, token and "
                               "key).", code="signature_invalid") from None
    now = timezone.now()
    try:
        with transaction.atomic():
            AutomationNonce.objects.create(automation=identity, nonce=nonce, at=now)
    except IntegrityError:
        raise SignatureRefused("This signature was used already: sign each call with a new nonce.",
                               code=REPLAYED) from None
    AutomationNonce.objects.filter(automation=identity, at__lt=now - timezone.timedelta(seconds=2 * SIGNATURE_WINDOW_SECONDS)).delete()


def _b64(text: str) -> bytes:
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
