"""Where people reach jitad (JITAD_BASE_URL), the passkey relying party that follows from it, and the REST API."""
import ipaddress
from urllib.parse import urlsplit

from .env import PRODUCTION, env, refuse

# Where people reach jitad: links in notifications, and the passkey (WebAuthn) origin.
if PRODUCTION and "JITAD_BASE_URL" not in env:
    refuse("JITAD_BASE_URL must be set in production (alert links, passkey origin)")
JITAD_BASE_URL = env.str("JITAD_BASE_URL", default="http://localhost:8000").rstrip("/")

# --- Passkeys (WebAuthn). The relying party is the host people type; passkeys are bound to it.
_base = urlsplit(JITAD_BASE_URL)
_base_origin = f"{_base.scheme}://{_base.netloc}"
try:
    _base_is_loopback_ip = ipaddress.ip_address(_base.hostname or "").is_loopback
except ValueError:
    _base_is_loopback_ip = False
# A passkey cannot be bound to an IP address, and only https:// or http://localhost are
# origins a browser lets passkeys use. For a base URL like http://127.0.0.1:8000 (one
# machine, following the docs) passkeys are bound to "localhost" on the same port: they
# work when the portal is opened at http://localhost:PORT, and a system check says so
# (jitad.accounts.checks) instead of refusing to migrate.
JITAD_PASSKEY_LOOPBACK_ORIGIN = (
    f"http://localhost{f':{_base.port}' if _base.port else ''}" if _base.scheme == "http" and _base_is_loopback_ip else ""
)
OTP_WEBAUTHN_RP_ID = env.str(
    "JITAD_WEBAUTHN_RP_ID", default="localhost" if JITAD_PASSKEY_LOOPBACK_ORIGIN else _base.hostname or "localhost"
)
OTP_WEBAUTHN_RP_NAME = env.str("JITAD_WEBAUTHN_RP_NAME", default="jitad")
OTP_WEBAUTHN_ALLOWED_ORIGINS = env.list(
    "JITAD_WEBAUTHN_ORIGINS", default=[JITAD_PASSKEY_LOOPBACK_ORIGIN or _base_origin]
)
# Passkeys are a second factor here: the AD password is always checked first.
OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = False

# --- REST API -------------------------------------------------------------------------
# Request bodies: at most this many bytes (forms, JSON) and JSON nested at most this deep;
# beyond either the answer is 413 / 400 with a JSON error, before any parser runs.
JITAD_MAX_BODY_BYTES = env.int("JITAD_MAX_BODY_BYTES", default=1024 * 1024)
JITAD_JSON_MAX_DEPTH = env.int("JITAD_JSON_MAX_DEPTH", default=32)
DATA_UPLOAD_MAX_MEMORY_SIZE = JITAD_MAX_BODY_BYTES
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "jitad.accounts.api.ApiTokenAuthentication",
        "jitad.accounts.api.VerifiedSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["jitad.accounts.api.OTPForUnsafeMethods"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "jitad.accounts.api_errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    # DRF's parsers behind jitad's size and depth limits (jitad/accounts/body_limits.py).
    "DEFAULT_PARSER_CLASSES": ["jitad.accounts.body_limits.BoundedJSONParser",
                               "jitad.accounts.body_limits.BoundedFormParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    # Swagger UI from the sidecar package: the docs page loads nothing from the internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "TITLE": "jitad API",
    "DESCRIPTION": "Just-in-time admin rights in Active Directory. Every state-changing call carries a current OTP code in `otp`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
}
