"""Django itself: hosts, apps, middleware, templates, the database, time zone, static files, logging."""
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .env import BASE_DIR, PRODUCTION, VAR_DIR, env, refuse

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
    "jitad.reports",
    "jitad.reviews",
    "jitad.operations",
]

MIDDLEWARE = [
    # First: every log line of the request, refusals included, names its id (jitad/logs.py).
    "jitad.logs.RequestIdMiddleware",
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
                "jitad.elevation.context.approvals",
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
    refuse("JITAD_DATABASE_URL must be set in production")
try:
    if env.str("JITAD_DATABASE_URL", default=_default_db).split("://", 1)[0] not in env.DB_SCHEMES:
        raise ValueError("not a scheme django-environ knows")
    DATABASES = {"default": env.db_url("JITAD_DATABASE_URL", default=_default_db)}
except (ImproperlyConfigured, KeyError, ValueError):
    # The URL is not quoted back: it may carry the database password.
    refuse("JITAD_DATABASE_URL is not a database URL (postgres://user:password@host:5432/name, or sqlite:////path)")
    DATABASES = {"default": env.db_url_config(_default_db)}
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
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Parameters travel beside the statement (server-side binding), not quoted into its text by
    # the client: in a mass expiry, quoting the id lists and bulk inserts' arrays into SQL was about
    # a quarter of the workers' CPU (docs/benchmarks.md). Statements are never prepared on the
    # server (prepare_threshold None): each is planned with its own values, so a plan chosen for one
    # burst's rows is never reused for another's. 0 turns it off (the client quotes, as before).
    if env.bool("JITAD_DB_SERVER_SIDE_BINDING", default=True):
        DATABASES["default"].setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": None})
    # libpq's own defaults, where JITAD_DATABASE_URL's query does not set them: a connection attempt gives up after
    # 10 s (an unanswering server would otherwise hold a request, or /readyz, until gunicorn's timeout); and no GSSAPI
    # encryption, which libpq would otherwise try first on every new connection with the Kerberos credentials jitad
    # sets up for its own bind and WinRM (a ticket request for postgres/<host> to the KDC, and a stall while the KDC
    # is down). A site that wants either says so in the URL (?gssencmode=prefer, ?connect_timeout=30).
    for _option, _value in (("connect_timeout", 10), ("gssencmode", "disable")):
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault(_option, _value)
# Persistent connections: a new PostgreSQL connection per request costs more than the page.
_sqlite = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
DATABASES["default"]["CONN_MAX_AGE"] = env.int("JITAD_DB_CONN_MAX_AGE", default=0 if _sqlite else 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# A Celery pool process keeps its connection across tasks this long (jitad/engine/worker.py),
# checked before each task's first query; 0 opens a new one for every task.
JITAD_WORKER_DB_CONN_MAX_AGE = env.int("JITAD_WORKER_DB_CONN_MAX_AGE", default=300)
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

# --- Logging --------------------------------------------------------------------------
# JITAD_LOG_FORMAT: "plain" (the default, for a terminal) or "json" (one JSON object per line, with the
# request, task and grant ids: jitad/logs.py; ops' production environment sets it). Either way, periodic
# work that did nothing logs nothing at INFO.
JITAD_LOG_FORMAT = env.str("JITAD_LOG_FORMAT", default="plain")
if JITAD_LOG_FORMAT not in ("plain", "json"):
    refuse(f"JITAD_LOG_FORMAT must be plain or json, not {JITAD_LOG_FORMAT!r}")
    JITAD_LOG_FORMAT = "plain"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "jitad.logs.ContextFilter"}, "quiet": {"()": "jitad.logs.QuietPeriodicFilter"},
                "redact": {"()": "jitad.logs.RedactTokensFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
                   "json": {"()": "jitad.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": JITAD_LOG_FORMAT,
                             "filters": ["context", "quiet", "redact"]}},
    "root": {"handlers": ["console"], "level": env.str("JITAD_LOG_LEVEL", default="INFO")},
    "loggers": {
        # ldap3 at DEBUG would print bind credentials; keep it quiet whatever the root says.
        "ldap3": {"level": "WARNING"},
        # apprise and urllib3 log destination URLs, tokens included; jitad logs each
        # delivery's outcome itself, with the secrets masked (jitad.notifications).
        "apprise": {"level": "WARNING", "handlers": [], "propagate": False},
        "urllib3": {"level": "WARNING"},
        # At DEBUG these log logon tokens: the Authorization: Negotiate header (a Kerberos ticket), every
        # GSSAPI/NTLM/CredSSP message. Held at INFO whatever the root says; the "redact" filter catches the rest.
        "winrm.vendor.requests_kerberos": {"level": "INFO"},
        "requests_kerberos": {"level": "INFO"},
        "requests_ntlm": {"level": "INFO"},
        "spnego": {"level": "INFO"},
    },
}
