"""Django settings for jitad, read from the environment with safe single-machine defaults.

Every variable is documented in ops/jitad.env.example. With nothing set, jitad runs on
one machine: SQLite and a filesystem broker under ./var. Production (JITAD_ENV=production)
must set the secret key, the database, the broker and the directory bind explicitly.
"""
import os
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

JITAD_ENV = env.str("JITAD_ENV", default="development")
PRODUCTION = JITAD_ENV == "production"
VAR_DIR = Path(env.str("JITAD_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env.str("JITAD_SECRET_KEY", default="")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("JITAD_SECRET_KEY must be set in production")
    # A per-checkout key: never shared, never committed (var/ is git-ignored).
    _key_file = VAR_DIR / "secret_key"
    if not _key_file.exists():
        from django.core.management.utils import get_random_secret_key

        _key_file.write_text(get_random_secret_key())
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

DEBUG = env.bool("JITAD_DEBUG", default=False)
ALLOWED_HOSTS = env.list("JITAD_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("JITAD_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_otp_webauthn",
    "django_htmx",
    "csp",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "jitad.vault",
    "jitad.engine",
    "jitad.accounts",
    "jitad.audit",
    "jitad.notifications",
    "jitad.health",
    "jitad.elevation",
    "jitad.breakglass",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # First after security, so every response (refusals by the middleware below included) carries the policy.
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "jitad.accounts.middleware.RejectNulMiddleware",
    "jitad.accounts.body_limits.JsonBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "jitad.accounts.middleware.MFARequiredMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "jitad.urls"
WSGI_APPLICATION = "jitad.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "jitad.accounts.context.mfa",
                "csp.context_processors.nonce",
            ],
            # {% load humantime %}: one way to write durations and timestamps (jitad/humantime.py).
            "libraries": {"humantime": "jitad.humantime"},
        },
    },
]

# --- Database -------------------------------------------------------------------------
_default_db = f"sqlite:///{VAR_DIR / 'jitad.sqlite3'}"
if PRODUCTION and "JITAD_DATABASE_URL" not in env:
    raise ImproperlyConfigured("JITAD_DATABASE_URL must be set in production")
DATABASES = {"default": env.db_url("JITAD_DATABASE_URL", default=_default_db)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: WAL lets readers run beside the writer,
    # IMMEDIATE takes the write lock up front so two writers queue instead of deadlocking.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file, not memory, so a real Celery worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
# Persistent connections: a new PostgreSQL connection per request costs more than the page.
_sqlite = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
DATABASES["default"]["CONN_MAX_AGE"] = env.int("JITAD_DB_CONN_MAX_AGE", default=0 if _sqlite else 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("JITAD_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
# Timestamps read "2026-12-05 14:30 UTC" everywhere, the admin included (jitad/formats/, jitad/humantime.py).
FORMAT_MODULE_PATH = ["jitad.formats"]

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("JITAD_STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "jitad" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed, content-hashed files when collected (production); plain finders otherwise.
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env.bool("JITAD_COLLECTED_STATIC", default=PRODUCTION)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Without collectstatic (the demo, tests), whitenoise serves straight from the finders.
WHITENOISE_USE_FINDERS = not env.bool("JITAD_COLLECTED_STATIC", default=PRODUCTION)

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

# --- Celery ---------------------------------------------------------------------------
# The broker is only a wake-up call; the database is the source of truth. The embedded
# default ("jitadfs://", jitad/broker.py) is kombu's filesystem transport with atomic
# writes: no server, works for web + worker + beat on one machine.
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="jitadfs://")
if PRODUCTION and "CELERY_BROKER_URL" not in env:
    raise ImproperlyConfigured("CELERY_BROKER_URL must be set in production")
if CELERY_BROKER_URL.startswith(("jitadfs://", "filesystem://")):
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # The filesystem transport polls; 1 s (kombu's default) would add up to a second
        # to every grant and revocation.
        "polling_interval": env.float("JITAD_BROKER_POLL_SECONDS", default=0.1),
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        # kombu's Redis transport, except that losing Redis no longer stops the worker (jitad/broker.py).
        CELERY_BROKER_TRANSPORT = "jitad.broker:RedisTransport"
        # A Redis that vanishes without closing the connection (failover, a firewall's idle
        # timeout, a black-holed host) fails a send within JITAD_BROKER_TIMEOUT instead of
        # hanging a page, a sweep or the watchdog for ever (kombu waits for ever by default).
        _broker_timeout = env.float("JITAD_BROKER_TIMEOUT", default=10.0)
        CELERY_BROKER_TRANSPORT_OPTIONS |= {"socket_timeout": _broker_timeout,
                                            "socket_connect_timeout": min(5.0, _broker_timeout)}
# Two queues: "celery" for the grant engine (apply, revoke, sweep, sync) and
# "notifications" for deliveries, whose destinations may hang for JITAD_DELIVERY_TIMEOUT.
# Production runs a worker per queue (`-Q celery`, `-Q notifications`, ops/README.md) so
# a hung chat service never holds the processes a revocation needs. Both are declared
# here, so a worker started without -Q consumes both: nothing is ever left unsent.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name, type="direct"), routing_key=name) for name in ("celery", "notifications", "hosts")
]
# "hosts": checks of revocations on servers and the standing-admin scans, which may wait
# JITAD_WINRM_DEADLINE on a hung server; production serves it from the notifications
# worker (`-Q notifications,hosts`) so the engine's processes stay free for revocations.
CELERY_TASK_ROUTES = {
    "jitad.notifications.*": {"queue": "notifications"},
    "jitad.elevation.grants_check_revoked": {"queue": "hosts"},
    "jitad.elevation.hosts_scan": {"queue": "hosts"},
    "jitad.elevation.host_scan": {"queue": "hosts"},
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker that loses the broker keeps trying for as long as the outage lasts (Celery gives up
# after 100 tries by default, and the process exits): the watchdog alerts meanwhile.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Beat is elected (jitad/engine/scheduler.py): run it in every engine worker (`-B`) or as
# `celery beat` on several machines; the holder of a database lease sends, and another
# instance takes over within JITAD_SCHEDULER_LEASE_SECONDS when it dies.
CELERY_BEAT_SCHEDULER = "jitad.engine.scheduler:ElectedScheduler"

# --- Directory (Active Directory over LDAPS) -----------------------------------------
# URLs are tried in order (first that answers wins, the next on failure).
JITAD_LDAP_URLS = env.list("JITAD_LDAP_URLS", default=[])
JITAD_LDAP_CA_FILE = env.str("JITAD_LDAP_CA_FILE", default="")
# Names the DC certificate may carry when it differs from the host in the URL.
JITAD_LDAP_TLS_NAMES = env.list("JITAD_LDAP_TLS_NAMES", default=[])
JITAD_LDAP_START_TLS = env.bool("JITAD_LDAP_START_TLS", default=False)
JITAD_LDAP_BIND_DN = env.str("JITAD_LDAP_BIND_DN", default="")
JITAD_LDAP_BIND_PASSWORD = env.str("JITAD_LDAP_BIND_PASSWORD", default="")
JITAD_LDAP_BASE_DN = env.str("JITAD_LDAP_BASE_DN", default="")
# The OU (or OUs, separated by ";") holding the JIT groups: jitad manages no group outside it.
JITAD_LDAP_JIT_OU = env.str("JITAD_LDAP_JIT_OU", default="")
JITAD_LDAP_CONNECT_TIMEOUT = env.float("JITAD_LDAP_CONNECT_TIMEOUT", default=3.0)
JITAD_LDAP_RECEIVE_TIMEOUT = env.float("JITAD_LDAP_RECEIVE_TIMEOUT", default=10.0)
# "auto" detects the Windows Server 2016 PAM optional feature; "off" never writes TTLs.
JITAD_LDAP_MEMBER_TTL = env.str("JITAD_LDAP_MEMBER_TTL", default="auto")
if PRODUCTION and not (JITAD_LDAP_URLS and JITAD_LDAP_BIND_DN and JITAD_LDAP_BIND_PASSWORD and JITAD_LDAP_CA_FILE):
    raise ImproperlyConfigured(
        "JITAD_LDAP_URLS, JITAD_LDAP_BIND_DN, JITAD_LDAP_BIND_PASSWORD and JITAD_LDAP_CA_FILE must be set in production"
    )
if PRODUCTION and not any(part.strip() for part in JITAD_LDAP_JIT_OU.split(";")):
    # Without it jitad manages no group: every grant would fail, and a policy file could not be applied.
    raise ImproperlyConfigured(
        "JITAD_LDAP_JIT_OU must be set in production: the OU holding jitad's JIT groups, e.g. OU=JIT,DC=corp,DC=example"
    )

# --- Policy file (jitad_apply_policy) ---------------------------------------------------
# A larger file is refused before it is read (a policy file of a few thousand targets is ~1 MB).
JITAD_POLICY_MAX_BYTES = env.int("JITAD_POLICY_MAX_BYTES", default=5 * 1024 * 1024)

# --- Windows hosts (WinRM; jitad/hosts/, docs/hosts.md) ---------------------------
# Credentials and trust come in profiles; a target names its profile (blank: "default").
# Default profile: JITAD_WINRM_USERNAME, JITAD_WINRM_PASSWORD, JITAD_WINRM_CA_BUNDLE,
# JITAD_WINRM_CERT_PEM, JITAD_WINRM_CERT_KEY_PEM. Another profile <NAME>: the same with
# JITAD_WINRM_PROFILE_<NAME>_ in front (USERNAME, PASSWORD, CA_BUNDLE, CERT_PEM, CERT_KEY_PEM).
# A *_FILE variant of PASSWORD reads the secret from a file (container secrets).
def _winrm_profile(prefix: str) -> dict:
    out = {}
    for key in ("USERNAME", "PASSWORD", "CA_BUNDLE", "CERT_PEM", "CERT_KEY_PEM"):
        value = os.environ.get(prefix + key, "")
        if key == "PASSWORD" and not value and os.environ.get(prefix + "PASSWORD_FILE"):
            value = Path(os.environ[prefix + "PASSWORD_FILE"]).read_text().strip()
        out[key.lower()] = value
    return out


JITAD_WINRM_PROFILES = {"default": _winrm_profile("JITAD_WINRM_")}
for _key in list(os.environ):
    _suffix = next((s for s in ("_USERNAME", "_CERT_PEM") if _key.endswith(s)), "")
    if _key.startswith("JITAD_WINRM_PROFILE_") and _suffix:
        _name = _key[len("JITAD_WINRM_PROFILE_"):-len(_suffix)]
        if _name:
            JITAD_WINRM_PROFILES[_name.lower().replace("_", "-")] = _winrm_profile(f"JITAD_WINRM_PROFILE_{_name}_")
# Every WinRM call: connect and read timeouts per HTTP request, the WS-Man operation
# timeout (a long Receive answers within it), and an overall deadline for the whole call.
JITAD_WINRM_CONNECT_TIMEOUT = env.float("JITAD_WINRM_CONNECT_TIMEOUT", default=5.0)
JITAD_WINRM_READ_TIMEOUT = env.float("JITAD_WINRM_READ_TIMEOUT", default=15.0)
JITAD_WINRM_OPERATION_TIMEOUT = env.float("JITAD_WINRM_OPERATION_TIMEOUT", default=10.0)
JITAD_WINRM_DEADLINE = env.float("JITAD_WINRM_DEADLINE", default=45.0)
# A grant whose right does not show on the server (GPO not applied yet, host down) is
# "unverified" and re-checked with backoff for this long, then left unverified (alerted).
JITAD_HOST_VERIFY_WINDOW_MINUTES = env.float("JITAD_HOST_VERIFY_WINDOW_MINUTES", default=30.0)
# The standing-admin scan: every this many seconds (0: never), members of each server's
# local Administrators that are neither its JIT group nor allowed here are reported.
# Entries are SIDs, or "*-<RID>" for a well-known RID on any machine or domain
# ("*-500": each machine's built-in Administrator account).
JITAD_HOST_SCAN_INTERVAL = env.float("JITAD_HOST_SCAN_INTERVAL", default=3600.0)
JITAD_HOST_ALLOWED_ADMINS = env.list("JITAD_HOST_ALLOWED_ADMINS", default=["*-500"])

# --- The vault (jitad/vault/, docs/mfa.md, docs/breakglass.md) -------------------------
# Every secret jitad keeps (sealed accounts' passwords, MFA keys, backup-code hashes) is
# encrypted at rest with these keys: the first encrypts, all decrypt (rotate: put a new
# key first, restart, `manage.py jitad_rekey`, then drop the old one). JITAD_VAULT_KEYS_FILE:
# one key per line (container secrets). JITAD_BREAKGLASS_KEYS(_FILE), the older names, are
# still read. Outside production a key is generated into JITAD_VAR_DIR/vault.keys (mode 600;
# an existing breakglass.keys there keeps being used).
def _vault_keys() -> list[str]:
    source, keys = "", []
    # Each name written out whole, so tests/test_ops_docs.py finds every one in the env example.
    for name, file_name in (("JITAD_VAULT_KEYS", "JITAD_VAULT_KEYS_FILE"),
                            ("JITAD_BREAKGLASS_KEYS", "JITAD_BREAKGLASS_KEYS_FILE")):
        if not keys and env.list(name, default=[]):
            source, keys = name, env.list(name)
        elif not keys and os.environ.get(file_name):
            source = file_name
            lines = Path(os.environ[source]).read_text().splitlines()
            keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        if PRODUCTION:
            raise ImproperlyConfigured("JITAD_VAULT_KEYS (or JITAD_VAULT_KEYS_FILE; the older JITAD_BREAKGLASS_KEYS "
                                       "is read too) must be set in production")
        source = "the generated vault key file"
        key_file = VAR_DIR / "breakglass.keys"
        if not key_file.exists():
            key_file = VAR_DIR / "vault.keys"
        try:  # O_EXCL: web and worker starting together must not each write a different key
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            from cryptography.fernet import Fernet

            with os.fdopen(fd, "w") as f:
                f.write(Fernet.generate_key().decode() + "\n")
        for _ in range(50):  # the other process may be between creating and writing the file
            keys = [line.strip() for line in key_file.read_text().splitlines() if line.strip()]
            if keys:
                break
            import time

            time.sleep(0.1)
    from cryptography.fernet import Fernet

    for i, key in enumerate(keys, 1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise ImproperlyConfigured(f"key {i} of {source} is not a Fernet key (32 url-safe base64 bytes; "
                                       "make one with `manage.py jitad_rekey --keygen`)") from None
    if len(set(keys)) != len(keys):
        raise ImproperlyConfigured(f"{source} names the same key twice")
    return keys


JITAD_VAULT_KEYS = _vault_keys()

# --- Break-glass (jitad/breakglass/, docs/breakglass.md) -----------------------------
# Length of the random passwords jitad sets (every character class; nothing that reads alike on paper).
JITAD_BREAKGLASS_PASSWORD_LENGTH = env.int("JITAD_BREAKGLASS_PASSWORD_LENGTH", default=32)
# A checkout waits this long for its approvals, then expires; an approved envelope must be printed within
# JITAD_BREAKGLASS_ENVELOPE_MINUTES.
JITAD_BREAKGLASS_PENDING_MINUTES = env.int("JITAD_BREAKGLASS_PENDING_MINUTES", default=60)
JITAD_BREAKGLASS_ENVELOPE_MINUTES = env.int("JITAD_BREAKGLASS_ENVELOPE_MINUTES", default=30)
# Beat drives break-glass work this often (windows ending, rotations due, retries), and checks each
# sealed account in AD every JITAD_BREAKGLASS_SEAL_CHECK_INTERVAL seconds (0: never): a password
# changed or an account enabled outside jitad breaks the seal (alerted; the password is rotated).
JITAD_BREAKGLASS_SWEEP_INTERVAL = env.float("JITAD_BREAKGLASS_SWEEP_INTERVAL", default=5.0)
JITAD_BREAKGLASS_SEAL_CHECK_INTERVAL = env.float("JITAD_BREAKGLASS_SEAL_CHECK_INTERVAL", default=300.0)
# What a checkout must say: an incident reference matching this pattern (blank: any), a reason this long.
JITAD_BREAKGLASS_INCIDENT_PATTERN = env.str("JITAD_BREAKGLASS_INCIDENT_PATTERN", default="")
JITAD_BREAKGLASS_REASON_MIN = env.int("JITAD_BREAKGLASS_REASON_MIN", default=10)
# Runbooks: markdown files with a front-matter header (runbooks/README.md).
JITAD_RUNBOOK_DIR = Path(env.str("JITAD_RUNBOOK_DIR", default=str(BASE_DIR / "runbooks")))

# --- Engine ---------------------------------------------------------------------------
JITAD_SWEEP_INTERVAL = env.float("JITAD_SWEEP_INTERVAL", default=1.0)
JITAD_RECONCILE_INTERVAL = env.float("JITAD_RECONCILE_INTERVAL", default=60.0)
JITAD_PENDING_CHECK_INTERVAL = env.float("JITAD_PENDING_CHECK_INTERVAL", default=30.0)
# The reconciler's brake (docs/reconciler.md): one run removes at most
# max(JITAD_RECONCILE_MAX_REMOVE_MIN, JITAD_RECONCILE_MAX_REMOVE_SHARE × the group's members)
# from a group. Beyond that it removes none of them: it holds them, alerts once, and waits
# for an operator to confirm or discard (`manage.py jitad_held_removals`). A share of 1 turns
# the brake off.
JITAD_RECONCILE_MAX_REMOVE_SHARE = env.float("JITAD_RECONCILE_MAX_REMOVE_SHARE", default=0.5)
JITAD_RECONCILE_MAX_REMOVE_MIN = env.int("JITAD_RECONCILE_MAX_REMOVE_MIN", default=3)
if not 0 <= JITAD_RECONCILE_MAX_REMOVE_SHARE <= 1:
    raise ImproperlyConfigured("JITAD_RECONCILE_MAX_REMOVE_SHARE must be between 0 and 1 (0.5 is half of a group)")
if JITAD_RECONCILE_MAX_REMOVE_MIN < 0:
    raise ImproperlyConfigured("JITAD_RECONCILE_MAX_REMOVE_MIN must be 0 or more")
# A claimed grant is worked by one task, which renews its claim every third of this while
# it works (jitad/engine/keeper.py); if the task vanishes (worker killed), the claim lapses
# after this many seconds and the sweeper hands the grant to another worker. A claim is
# renewed for at most JITAD_CLAIM_MAX_HOLD_SECONDS.
JITAD_LEASE_SECONDS = env.float("JITAD_LEASE_SECONDS", default=10.0)
if JITAD_LEASE_SECONDS < 3:
    raise ImproperlyConfigured("JITAD_LEASE_SECONDS must be at least 3 (claims are renewed every third of it)")
JITAD_CLAIM_MAX_HOLD_SECONDS = env.float("JITAD_CLAIM_MAX_HOLD_SECONDS", default=900.0)
# Redundancy (docs/engine.md, "Nothing stops silently"). The scheduler lease: how long a dead
# scheduler's leadership lasts before another takes over. Every worker and scheduler reports a
# heartbeat every JITAD_HEARTBEAT_SECONDS, as JITAD_NODE_NAME (default: the host name; set it
# when one machine runs several schedulers); one silent for JITAD_PROCESS_SILENT_SECONDS is
# alerted as dead, and forgotten after JITAD_PROCESS_FORGET_HOURS.
JITAD_SCHEDULER_LEASE_SECONDS = env.float("JITAD_SCHEDULER_LEASE_SECONDS", default=6.0)
JITAD_NODE_NAME = env.str("JITAD_NODE_NAME", default="")
JITAD_HEARTBEAT_SECONDS = env.float("JITAD_HEARTBEAT_SECONDS", default=2.0)
JITAD_PROCESS_SILENT_SECONDS = env.float("JITAD_PROCESS_SILENT_SECONDS", default=15.0)
JITAD_PROCESS_FORGET_HOURS = env.float("JITAD_PROCESS_FORGET_HOURS", default=24.0)
# The watchdog runs every JITAD_WATCH_INTERVAL seconds in one live process (whichever holds
# its lease) and alerts, once per condition until it is resolved: grants past their end by
# more than JITAD_REVOCATION_SLA_SECONDS, no sweep for JITAD_SWEEP_STALE_SECONDS, dead
# processes, domain controllers that do not answer a probe within JITAD_DC_PROBE_TIMEOUT.
# An open condition is reminded every JITAD_ALERT_REMIND_MINUTES (0: never).
JITAD_WATCH_INTERVAL = env.float("JITAD_WATCH_INTERVAL", default=5.0)
JITAD_REVOCATION_SLA_SECONDS = env.float("JITAD_REVOCATION_SLA_SECONDS", default=30.0)
JITAD_SWEEP_STALE_SECONDS = env.float("JITAD_SWEEP_STALE_SECONDS", default=15.0)
JITAD_DC_PROBE_TIMEOUT = env.float("JITAD_DC_PROBE_TIMEOUT", default=5.0)
# The watchdog also asks the broker, within JITAD_BROKER_PROBE_TIMEOUT: one that does not answer
# is alerted, and meanwhile the watchdog's process revokes due grants and sends alerts itself.
JITAD_BROKER_PROBE_TIMEOUT = env.float("JITAD_BROKER_PROBE_TIMEOUT", default=3.0)
JITAD_ALERT_REMIND_MINUTES = env.float("JITAD_ALERT_REMIND_MINUTES", default=60.0)
# Transient failures: attempts before the grant is marked failed and alerted, and the
# exponential backoff (with full jitter) between them.
JITAD_RETRY_MAX_ATTEMPTS = env.int("JITAD_RETRY_MAX_ATTEMPTS", default=5)
JITAD_RETRY_BASE_SECONDS = env.float("JITAD_RETRY_BASE_SECONDS", default=1.0)
JITAD_RETRY_MAX_SECONDS = env.float("JITAD_RETRY_MAX_SECONDS", default=60.0)
# What the approval queue shows about a requester: their grants of the same target over
# JITAD_CONTEXT_HISTORY_DAYS, and an "always-on" flag when they held it on at least
# JITAD_ALWAYS_ON_MIN_DAYS distinct days of the last JITAD_ALWAYS_ON_WINDOW_DAYS.
JITAD_CONTEXT_HISTORY_DAYS = env.int("JITAD_CONTEXT_HISTORY_DAYS", default=30)
JITAD_ALWAYS_ON_WINDOW_DAYS = env.int("JITAD_ALWAYS_ON_WINDOW_DAYS", default=14)
JITAD_ALWAYS_ON_MIN_DAYS = env.int("JITAD_ALWAYS_ON_MIN_DAYS", default=8)
# How many due grants one sweep claims (the rest go in the next sweep).
JITAD_SWEEP_BATCH = env.int("JITAD_SWEEP_BATCH", default=2000)
JITAD_SWEEP_MAX_BATCHES = env.int("JITAD_SWEEP_MAX_BATCHES", default=20)
# Where people reach jitad: links in notifications, and the passkey (WebAuthn) origin.
if PRODUCTION and "JITAD_BASE_URL" not in env:
    raise ImproperlyConfigured("JITAD_BASE_URL must be set in production (alert links, passkey origin)")
JITAD_BASE_URL = env.str("JITAD_BASE_URL", default="http://localhost:8000").rstrip("/")

# --- Passkeys (WebAuthn). The relying party is the host people type; passkeys are bound to it.
import ipaddress  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

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

# --- Notifications (jitad.notifications; docs/notifications.md) ----------------------
# Destinations are apprise URLs (slack://, workflows:// for Teams, json://, mailto://, ...)
# or email://person@example.org (sent through the mail settings below). They stay in the
# environment: the database keeps only the variable's name and a masked form of each URL.
# The security channel: failures, out-of-band members, MFA changes, break-glass.
JITAD_ALERT_URLS = env.list("JITAD_ALERT_URLS", default=[])
if PRODUCTION and not JITAD_ALERT_URLS:
    # Without it, failed revocations, out-of-band members and break-glass emergencies reach nobody.
    raise ImproperlyConfigured(
        "JITAD_ALERT_URLS must be set in production: the security channel (failed revocations, out-of-band "
        "members, break-glass emergencies) needs at least one destination, an apprise URL or email://address"
    )
# Routine security events (people enrolling MFA, making backup codes or API tokens) wait and
# go to each destination as one digest every JITAD_ALERT_DIGEST_MINUTES, counted by kind with
# the people named (each event is in the audit trail anyway); 0 sends each at once. Events of
# privileged people (approvers, break-glass responders, staff) and everything else go at once.
JITAD_ALERT_DIGEST_MINUTES = env.float("JITAD_ALERT_DIGEST_MINUTES", default=15.0)
if JITAD_ALERT_DIGEST_MINUTES < 0:
    raise ImproperlyConfigured("JITAD_ALERT_DIGEST_MINUTES must be 0 (send each alert at once) or more")
# New requests to decide, when the request's policy names no destination of its own.
JITAD_APPROVAL_URLS = env.list("JITAD_APPROVAL_URLS", default=[])
# Named destinations a policy may send its approval requests to: JITAD_NOTIFY_<NAME>=url[,url]
# becomes JITAD_NOTIFY_DESTINATIONS["<name>"] (lower case, "_" read as "-"). The URLs stay in
# the environment: policy files and the database hold only the names.
JITAD_NOTIFY_DESTINATIONS = {
    key[len("JITAD_NOTIFY_"):].lower().replace("_", "-"): [u.strip() for u in value.split(",") if u.strip()]
    for key, value in os.environ.items()
    if key.startswith("JITAD_NOTIFY_") and len(key) > len("JITAD_NOTIFY_")
}
# Each delivery is one worker task: attempts before it is marked failed, the exponential
# backoff (with jitter) between them, and how long one attempt may take.
JITAD_DELIVERY_MAX_ATTEMPTS = env.int("JITAD_DELIVERY_MAX_ATTEMPTS", default=5)
JITAD_DELIVERY_RETRY_BASE_SECONDS = env.float("JITAD_DELIVERY_RETRY_BASE_SECONDS", default=30.0)
JITAD_DELIVERY_RETRY_MAX_SECONDS = env.float("JITAD_DELIVERY_RETRY_MAX_SECONDS", default=900.0)
JITAD_DELIVERY_TIMEOUT = env.float("JITAD_DELIVERY_TIMEOUT", default=20.0)
# Beat re-sends deliveries whose task message was lost (broker restart, worker killed), and
# sends the digests that are due, this often.
JITAD_DELIVERY_CHECK_INTERVAL = env.float("JITAD_DELIVERY_CHECK_INTERVAL", default=60.0)
# Tell holders this many minutes before a grant ends (0: never), checked every interval.
JITAD_EXPIRY_WARNING_MINUTES = env.int("JITAD_EXPIRY_WARNING_MINUTES", default=15)
JITAD_EXPIRY_CHECK_INTERVAL = env.float("JITAD_EXPIRY_CHECK_INTERVAL", default=60.0)

# E-mail to people (requesters, approvers) goes through Django's mail backend. Production:
# JITAD_EMAIL_URL=smtp+tls://user:password@smtp.corp.example:587 (or smtps://, smtp://).
# Without it, mail is written to files under JITAD_VAR_DIR/mail, and nothing leaves the machine.
if "JITAD_EMAIL_URL" in env:
    globals().update(env.email_url("JITAD_EMAIL_URL"))
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
DEFAULT_FROM_EMAIL = env.str("JITAD_EMAIL_FROM", default="jitad@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_TIMEOUT = JITAD_DELIVERY_TIMEOUT

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("JITAD_LOG_LEVEL", default="INFO")},
    "loggers": {
        # ldap3 at DEBUG would print bind credentials; keep it quiet whatever the root says.
        "ldap3": {"level": "WARNING"},
        # apprise and urllib3 log destination URLs, tokens included; jitad logs each
        # delivery's outcome itself, with the secrets masked (jitad.notifications).
        "apprise": {"level": "WARNING", "handlers": [], "propagate": False},
        "urllib3": {"level": "WARNING"},
    },
}
