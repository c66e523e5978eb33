"""The secret key, login and MFA, sessions and cookies, TLS behind a proxy, and the Content-Security-Policy.

Passkeys (WebAuthn) follow JITAD_BASE_URL and live in portal.py.
"""
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from .env import PRODUCTION, VAR_DIR, env, refuse

# --- Secret key -----------------------------------------------------------------------
SECRET_KEY = env.str("JITAD_SECRET_KEY", default="")
if not SECRET_KEY and PRODUCTION:
    refuse("JITAD_SECRET_KEY must be set in production")
elif not SECRET_KEY:
    # A per-checkout key: never shared, never committed (var/ is git-ignored).
    _key_file = VAR_DIR / "secret_key"
    if not _key_file.exists():
        from django.core.management.utils import get_random_secret_key

        _key_file.write_text(get_random_secret_key())
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

# --- Login and MFA --------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "jitad.accounts.backends.ActiveDirectoryBackend",
    "jitad.accounts.backends.ThrottledModelBackend",
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "elevation:access"
LOGOUT_REDIRECT_URL = "accounts:login"
# A privileged step (request, approve, extend, release, break-glass) needs an MFA
# verification younger than this.
JITAD_MFA_FRESH_SECONDS = env.int("JITAD_MFA_FRESH_SECONDS", default=15 * 60)
OTP_TOTP_ISSUER = env.str("JITAD_OTP_ISSUER", default="jitad")
# A person's first MFA enrolment must present a one-time code the service desk issued them
# (manage.py jitad_enrolment_code; docs/mfa.md, "Enrolment codes"): on in production, so a
# stolen AD password alone never enrols an authenticator. A code lasts JITAD_ENROLMENT_CODE_HOURS
# and dies after JITAD_ENROLMENT_CODE_MAX_ATTEMPTS wrong tries.
JITAD_ENROLMENT_CODE_REQUIRED = env.bool("JITAD_ENROLMENT_CODE_REQUIRED", default=PRODUCTION)
JITAD_ENROLMENT_CODE_HOURS = env.int("JITAD_ENROLMENT_CODE_HOURS", default=72)
JITAD_ENROLMENT_CODE_MAX_ATTEMPTS = env.int("JITAD_ENROLMENT_CODE_MAX_ATTEMPTS", default=5)
if not 1 <= JITAD_ENROLMENT_CODE_HOURS <= 24 * 30:
    refuse("JITAD_ENROLMENT_CODE_HOURS must be between 1 and 720")
if not 1 <= JITAD_ENROLMENT_CODE_MAX_ATTEMPTS <= 20:
    refuse("JITAD_ENROLMENT_CODE_MAX_ATTEMPTS must be between 1 and 20")
# The longest an approver may hand their approval right to a deputy for (docs/approvals.md, "Deputies").
JITAD_DELEGATION_MAX_DAYS = env.int("JITAD_DELEGATION_MAX_DAYS", default=90)
# The login throttle (jitad/accounts/throttle.py, docs/logins.md), counted over the window:
# wrong passwords per account from addresses it has not logged in from (together), or from
# one address it has (JITAD_LOGIN_KNOWN_ADDRESS_DAYS), before that pool pauses; wrong logins
# per client address before each next one waits JITAD_LOGIN_CLIENT_DELAY_SECONDS, doubled per
# further failure; AD's lockout threshold (0: AD locks nobody out), which jitad's failed binds
# per account stay below. The window should be at least AD's "reset lockout counter after".
JITAD_LOGIN_MAX_FAILURES = env.int("JITAD_LOGIN_MAX_FAILURES", default=5)
JITAD_LOGIN_FAILURE_WINDOW_SECONDS = env.int("JITAD_LOGIN_FAILURE_WINDOW_SECONDS", default=15 * 60)
JITAD_LOGIN_CLIENT_FREE_FAILURES = env.int("JITAD_LOGIN_CLIENT_FREE_FAILURES", default=5)
JITAD_LOGIN_CLIENT_DELAY_SECONDS = env.float("JITAD_LOGIN_CLIENT_DELAY_SECONDS", default=1.0)
JITAD_LOGIN_AD_LOCKOUT_THRESHOLD = env.int("JITAD_LOGIN_AD_LOCKOUT_THRESHOLD", default=10)
JITAD_LOGIN_KNOWN_ADDRESS_DAYS = env.int("JITAD_LOGIN_KNOWN_ADDRESS_DAYS", default=30)
# Reverse proxies (addresses or CIDR networks) whose X-Forwarded-For names the client; from
# anyone else the header is ignored and REMOTE_ADDR is the client.
JITAD_TRUSTED_PROXIES = env.list("JITAD_TRUSTED_PROXIES", default=[])
# Between logins, people's AD groups and account state are re-read this often (seconds;
# 0: only at login). Removed from an approver group in AD means no longer an approver here.
JITAD_DIRECTORY_SYNC_INTERVAL = env.float("JITAD_DIRECTORY_SYNC_INTERVAL", default=900.0)
# The admin's device pages never show TOTP keys or backup codes.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# Wrong codes lock a device for 1, 2, 4, ... seconds (django-otp's throttling).
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1

# Database sessions whose table holds a digest of each key, never the key (docs/mfa.md).
SESSION_ENGINE = "jitad.accounts.sessions"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("JITAD_SECURE_COOKIES", default=PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_AGE = env.int("JITAD_SESSION_AGE_SECONDS", default=8 * 3600)
X_FRAME_OPTIONS = "DENY"
# Behind a TLS-terminating proxy (ops/README.md), trust its scheme header so links,
# redirects and secure cookies know the request was HTTPS. The proxy must then be in
# JITAD_TRUSTED_PROXIES too (system check jitad.accounts.E003 in production).
JITAD_BEHIND_TLS_PROXY = env.bool("JITAD_BEHIND_TLS_PROXY", default=PRODUCTION)
if JITAD_BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("JITAD_SSL_REDIRECT", default=PRODUCTION)
# A load balancer's health probe and a Prometheus scrape of a machine's own gunicorn (a workers-only
# machine's, say) often speak plain HTTP to the process: answer them, never redirect them (a
# redirected probe reads as "down"). Their own rules still apply (ops/README.md, "Health and metrics").
SECURE_REDIRECT_EXEMPT = [r"^healthz\Z", r"^readyz\Z", r"^metrics\Z"]
SECURE_HSTS_SECONDS = env.int("JITAD_HSTS_SECONDS", default=31536000 if PRODUCTION else 0)
# Every name under the site's domain must speak HTTPS too once a browser has seen the header.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("JITAD_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_REFERRER_POLICY = "same-origin"

# Content-Security-Policy on every response (django-csp; README.md "Browser security").
# Scripts come only from jitad itself; an inline <script> in a template runs only with
# the nonce of its own response (nonce="{{ CSP_NONCE }}"), never 'unsafe-inline'.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        # 'unsafe-inline' for styles only: templates and Django's admin use style="..."
        # attributes, the API docs page has a <style> block, and htmx adds its indicator
        # style; a nonce cannot cover attributes (and its presence would disable
        # 'unsafe-inline'). Styles cannot run code, so scripts stay nonce-only.
        "style-src": [SELF, UNSAFE_INLINE],
        # data: for the icons Swagger UI's stylesheet embeds.
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}
