"""Settings from the environment: production refuses to start half-configured; development
runs on one machine with no servers; ldap3 never logs credentials.

Each case starts a fresh interpreter with ``jitad.settings`` (not the tests' settings)
and only the variables the case names.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PRODUCTION = {
    "JITAD_ENV": "production",
    "JITAD_SECRET_KEY": "a-production-secret-key-" + "x" * 40,
    "JITAD_DATABASE_URL": "postgres://jitad:pw@db.example.test:5432/jitad",
    "CELERY_BROKER_URL": "redis://broker.example.test:6379/0",
    "JITAD_LDAP_URLS": "ldaps://dc1.example.test,ldaps://dc2.example.test",
    "JITAD_LDAP_BIND_DN": "CN=svc-jitad,CN=Users,DC=example,DC=test",
    "JITAD_LDAP_BIND_PASSWORD": "bind-password",
    "JITAD_LDAP_CA_FILE": "/etc/jitad/ca.pem",
    "JITAD_LDAP_JIT_OU": "OU=JIT,DC=example,DC=test",
    "JITAD_BASE_URL": "https://jitad.example.test",
    "JITAD_VAULT_KEYS": "A" * 43 + "=",  # a well-formed Fernet key (32 zero bytes), for these tests only
    "JITAD_ALERT_URLS": "json://alerts.example.test/hook",
}

# Printed by the child after setup, so the parent can assert on the settings it got.
REPORT = """
import json, logging
import django
django.setup()
from django.conf import settings
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "broker": settings.CELERY_BROKER_URL,
    "debug": settings.DEBUG,
    "secure_cookies": settings.SESSION_COOKIE_SECURE,
    "secret_key": settings.SECRET_KEY,
    "ldap3_level": logging.getLogger("ldap3").level,
    "ldap3_debug_enabled": logging.getLogger("ldap3").isEnabledFor(logging.DEBUG),
    "root_level": logging.getLogger().level,
    "enrolment_code_required": settings.JITAD_ENROLMENT_CODE_REQUIRED,
}))
"""


def run_setup(tmp_path, extra: dict[str, str], code: str = "import django; django.setup()"):
    """``django.setup()`` with jitad.settings in a child whose environment has no JITAD_* or
    CELERY_* variable except ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JITAD_", "CELERY_", "DJANGO_", "PROMETHEUS_"))}
    env.update(DJANGO_SETTINGS_MODULE="jitad.settings", JITAD_VAR_DIR=str(tmp_path / "var"), PYTHONPATH=str(REPO))
    env.update(extra)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def without(*keys: str) -> dict[str, str]:
    return {k: v for k, v in PRODUCTION.items() if k not in keys}


def assert_refused(result, message: str) -> None:
    assert result.returncode != 0, f"setup should have failed; stdout: {result.stdout}"
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr, result.stderr[-2000:]


def test_production_needs_a_secret_key(tmp_path):
    result = run_setup(tmp_path, without("JITAD_SECRET_KEY"))
    assert_refused(result, "JITAD_SECRET_KEY must be set")
    # and no per-checkout key was generated in its place
    assert not (tmp_path / "var" / "secret_key").exists()


def test_production_needs_a_database_url(tmp_path):
    assert_refused(run_setup(tmp_path, without("JITAD_DATABASE_URL")), "JITAD_DATABASE_URL must be set")


def test_production_needs_a_broker_url(tmp_path):
    assert_refused(run_setup(tmp_path, without("CELERY_BROKER_URL")), "CELERY_BROKER_URL must be set")


@pytest.mark.parametrize(
    "missing", ["JITAD_LDAP_URLS", "JITAD_LDAP_BIND_DN", "JITAD_LDAP_BIND_PASSWORD", "JITAD_LDAP_CA_FILE"]
)
def test_production_needs_the_directory_bind(tmp_path, missing):
    """GIVEN production settings complete but for one LDAP variable WHEN Django starts
    THEN it refuses, and the message names that variable."""
    assert_refused(run_setup(tmp_path, without(missing)), missing)


def test_production_empty_bind_password_counts_as_missing(tmp_path):
    assert_refused(run_setup(tmp_path, {**PRODUCTION, "JITAD_LDAP_BIND_PASSWORD": ""}), "JITAD_LDAP_BIND_PASSWORD")


def test_production_needs_the_base_url(tmp_path):
    """Alert links and the passkey origin come from it; localhost would be wrong and silent."""
    assert_refused(run_setup(tmp_path, without("JITAD_BASE_URL")), "JITAD_BASE_URL must be set")


@pytest.mark.parametrize("value", [None, ""])
def test_production_needs_a_security_channel(tmp_path, value):
    """GIVEN production settings with JITAD_ALERT_URLS unset or empty WHEN Django starts THEN it refuses:
    failed revocations and break-glass emergencies would otherwise reach nobody. A named destination
    (JITAD_NOTIFY_<NAME>) receives approval requests only, so it does not stand in for the channel."""
    extra = without("JITAD_ALERT_URLS") | {"JITAD_NOTIFY_DBA_TEAM": "json://dba.example.test/hook"}
    if value is not None:
        extra["JITAD_ALERT_URLS"] = value
    assert_refused(run_setup(tmp_path, extra), "JITAD_ALERT_URLS must be set in production")


MIGRATE = "from django.core.management import execute_from_command_line; execute_from_command_line(['manage.py', 'migrate', '-v0'])"  # as manage.py runs it: system checks first
PASSKEYS = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps([settings.OTP_WEBAUTHN_RP_ID, settings.OTP_WEBAUTHN_ALLOWED_ORIGINS]))
"""


@pytest.mark.parametrize("base", ["http://127.0.0.1:8000", "http://[::1]:8000"])
def test_migrate_works_with_a_loopback_base_url(tmp_path, base):
    """GIVEN JITAD_BASE_URL=http://127.0.0.1:8000, as the one-machine docs say WHEN migrate runs THEN it
    succeeds, with a warning that passkeys are bound to http://localhost:8000 (a passkey cannot be bound to
    an IP address, and a browser uses passkeys only on https:// or http://localhost)."""
    result = run_setup(tmp_path, {"JITAD_BASE_URL": base}, code=MIGRATE)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "jitad.W010" in result.stderr and "http://localhost:8000" in result.stderr, result.stderr[-2000:]
    got = json.loads(run_setup(tmp_path, {"JITAD_BASE_URL": base}, code=PASSKEYS).stdout.strip().splitlines()[-1])
    assert got == ["localhost", ["http://localhost:8000"]]


def test_passkeys_follow_an_https_base_url_without_warning(tmp_path):
    code = "import django; django.setup(); from django.core.management import call_command; call_command('check')"
    result = run_setup(tmp_path, {"JITAD_BASE_URL": "https://jitad.example.test"}, code=code)
    assert result.returncode == 0 and "jitad.W010" not in result.stderr, result.stderr[-2000:]
    got = json.loads(run_setup(tmp_path, {"JITAD_BASE_URL": "https://jitad.example.test"}, code=PASSKEYS)
                     .stdout.strip().splitlines()[-1])
    assert got == ["jitad.example.test", ["https://jitad.example.test"]]


def test_a_plain_http_host_name_is_refused_with_the_libraries_message(tmp_path):
    """Passkeys need https:// anywhere but on the machine itself: the documented message, not a guess."""
    result = run_setup(tmp_path, {"JITAD_BASE_URL": "http://jitad.example.test:8000"}, code=MIGRATE)
    assert result.returncode != 0
    assert "otp_webauthn.E031" in result.stderr and "is not a secure origin" in result.stderr


def test_production_needs_the_vault_key(tmp_path):
    assert_refused(run_setup(tmp_path, without("JITAD_VAULT_KEYS")), "JITAD_VAULT_KEYS")


def test_a_malformed_vault_key_is_refused_at_start(tmp_path):
    assert_refused(run_setup(tmp_path, {**PRODUCTION, "JITAD_VAULT_KEYS": "not-a-key"}), "key 1 of JITAD_VAULT_KEYS")
    legacy = {**without("JITAD_VAULT_KEYS"), "JITAD_BREAKGLASS_KEYS": "not-a-key"}
    assert_refused(run_setup(tmp_path, legacy), "key 1 of JITAD_BREAKGLASS_KEYS")


@pytest.mark.parametrize("variable", ["JITAD_VAULT_KEYS", "JITAD_BREAKGLASS_KEYS"])
def test_vault_keys_under_either_name(tmp_path, variable):
    """The older name (JITAD_BREAKGLASS_KEYS) is still read, as ops/jitad.env.example says."""
    code = "import django; django.setup(); from django.conf import settings; print(settings.JITAD_VAULT_KEYS)"
    result = run_setup(tmp_path, {**without("JITAD_VAULT_KEYS"), variable: "C" * 43 + "="}, code=code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(["C" * 43 + "="])


@pytest.mark.parametrize("variable", ["JITAD_VAULT_KEYS_FILE", "JITAD_BREAKGLASS_KEYS_FILE"])
def test_vault_keys_from_a_file(tmp_path, variable):
    keys = tmp_path / "vault-keys"
    keys.write_text("# newest first\n" + "B" * 43 + "=\n" + "A" * 43 + "=\n")
    code = "import django; django.setup(); from django.conf import settings; print(settings.JITAD_VAULT_KEYS)"
    result = run_setup(tmp_path, {**without("JITAD_VAULT_KEYS"), variable: str(keys)}, code=code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(["B" * 43 + "=", "A" * 43 + "="])


CHECK = "import django; django.setup(); from django.core.management import call_command; call_command('check')"


@pytest.mark.parametrize("value", [None, "", " ; "])
def test_production_needs_the_jit_ou(tmp_path, value):
    """GIVEN production settings with JITAD_LDAP_JIT_OU unset or blank WHEN Django starts (web, worker,
    beat or a command) THEN it refuses: without it jitad manages no group."""
    extra = without("JITAD_LDAP_JIT_OU") | ({} if value is None else {"JITAD_LDAP_JIT_OU": value})
    assert_refused(run_setup(tmp_path, extra), "JITAD_LDAP_JIT_OU must be set in production")


def test_production_checks_the_jit_ou_is_an_ou(tmp_path):
    """GIVEN a JIT OU that is not an OU's DN WHEN the system checks run (manage.py check, migrate,
    runserver) THEN they fail and say why; a right one passes."""
    result = run_setup(tmp_path, {**PRODUCTION, "JITAD_LDAP_JIT_OU": "CN=Users,DC=example,DC=test"}, CHECK)
    assert result.returncode != 0 and "jitad.directory.E001" in result.stderr
    assert "its first RDN must be OU=" in result.stderr
    result = run_setup(tmp_path, PRODUCTION, CHECK)
    assert "jitad.directory." not in result.stderr, result.stderr[-2000:]


def test_production_behind_a_tls_proxy_must_trust_it(tmp_path):
    """GIVEN production settings (behind a TLS proxy by default) with no JITAD_TRUSTED_PROXIES WHEN the system
    checks run THEN they fail with jitad.accounts.E003: every client would have the proxy's address. Naming the
    proxy, or saying there is none in front (JITAD_BEHIND_TLS_PROXY=false), passes."""
    result = run_setup(tmp_path, PRODUCTION, CHECK)
    assert result.returncode != 0 and "jitad.accounts.E003" in result.stderr, result.stderr[-2000:]
    assert "JITAD_TRUSTED_PROXIES is empty" in result.stderr
    for extra in ({"JITAD_TRUSTED_PROXIES": "10.0.0.5,10.0.1.0/28"}, {"JITAD_BEHIND_TLS_PROXY": "false"}):
        result = run_setup(tmp_path, {**PRODUCTION, **extra}, CHECK)
        assert result.returncode == 0 and "jitad.accounts.E003" not in result.stderr, (extra, result.stderr[-2000:])


def test_vault_keys_under_the_general_name_come_first(tmp_path):
    """JITAD_VAULT_KEYS is the general name; the older JITAD_BREAKGLASS_KEYS is read when it is not set."""
    code = "import django; django.setup(); from django.conf import settings; print(settings.JITAD_VAULT_KEYS)"
    result = run_setup(tmp_path, {**PRODUCTION, "JITAD_BREAKGLASS_KEYS": "B" * 43 + "=",
                                  "JITAD_VAULT_KEYS": "C" * 43 + "=," + "A" * 43 + "="}, code=code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(["C" * 43 + "=", "A" * 43 + "="])
    result = run_setup(tmp_path, {**without("JITAD_VAULT_KEYS"), "JITAD_BREAKGLASS_KEYS": "B" * 43 + "="}, code=code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(["B" * 43 + "="])
    result = run_setup(tmp_path, {**without("JITAD_VAULT_KEYS"), "JITAD_BREAKGLASS_KEYS": "bad"}, code=code)
    assert_refused(result, "key 1 of JITAD_BREAKGLASS_KEYS is not a Fernet key")


def test_production_starts_when_everything_is_set(tmp_path):
    result = run_setup(tmp_path, PRODUCTION, code=REPORT)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["engine"] == "django.db.backends.postgresql"
    assert got["broker"] == PRODUCTION["CELERY_BROKER_URL"]
    assert got["secret_key"] == PRODUCTION["JITAD_SECRET_KEY"]
    assert got["debug"] is False
    assert got["secure_cookies"] is True
    assert got["enrolment_code_required"] is True  # a stolen password alone enrols no authenticator
    assert not (tmp_path / "var" / "secret_key").exists()


def test_development_defaults_sqlite_and_filesystem_broker(tmp_path):
    """GIVEN no configuration at all WHEN Django starts THEN it runs on one machine:
    SQLite and kombu's filesystem broker under JITAD_VAR_DIR, and a private generated key."""
    result = run_setup(tmp_path, {}, code=REPORT)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["engine"] == "django.db.backends.sqlite3"
    assert got["broker"] == "jitadfs://"  # the filesystem transport with atomic writes (jitad/broker.py)
    assert got["secure_cookies"] is False
    assert got["enrolment_code_required"] is False
    var = tmp_path / "var"
    assert (var / "broker" / "queue").is_dir()
    key_file = var / "secret_key"
    assert key_file.read_text().strip() == got["secret_key"] and len(got["secret_key"]) >= 40
    assert key_file.stat().st_mode & 0o777 == 0o600

    again = json.loads(run_setup(tmp_path, {}, code=REPORT).stdout.strip().splitlines()[-1])
    assert again["secret_key"] == got["secret_key"]  # stable across restarts
    vault_key = var / "vault.keys"  # a generated vault key, private too
    assert vault_key.stat().st_mode & 0o777 == 0o600 and len(vault_key.read_text().strip()) == 44


def test_ldap3_logger_stays_at_warning_even_at_debug(tmp_path):
    """GIVEN JITAD_LOG_LEVEL=DEBUG WHEN Django configures logging THEN the root logger is
    at DEBUG but ldap3 (which would log bind credentials at DEBUG) stays at WARNING."""
    result = run_setup(tmp_path, {"JITAD_LOG_LEVEL": "DEBUG"}, code=REPORT)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["root_level"] == 10
    assert got["ldap3_level"] == 30
    assert got["ldap3_debug_enabled"] is False


def test_ldap3_logger_at_warning_in_this_process():
    import logging

    from django.conf import settings

    assert settings.LOGGING["loggers"]["ldap3"]["level"] == "WARNING"
    assert logging.getLogger("ldap3").getEffectiveLevel() == logging.WARNING


HEADERS = """
import django
django.setup()
from django.http import HttpResponse
from django.middleware.security import SecurityMiddleware
from django.test import RequestFactory
response = SecurityMiddleware(lambda request: HttpResponse())(RequestFactory().get("/", secure=True))
print(response.get("Strict-Transport-Security", ""))
"""


def test_production_sends_hsts_for_the_domain_and_its_subdomains(tmp_path):
    """GIVEN production settings WHEN an HTTPS page is answered THEN browsers are told to use HTTPS
    for a year on this name and every name below it (no preload: that is the operator's choice)."""
    result = run_setup(tmp_path, PRODUCTION, code=HEADERS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "max-age=31536000; includeSubDomains"


def test_development_sends_no_hsts(tmp_path):
    result = run_setup(tmp_path, {}, code=HEADERS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("variable, value, message", [
    ("JITAD_RECONCILE_MAX_REMOVE_SHARE", "50", "between 0 and 1 (0.5 is half"),
    ("JITAD_RECONCILE_MAX_REMOVE_MIN", "-1", "JITAD_RECONCILE_MAX_REMOVE_MIN must be 0 or more"),
    ("JITAD_GROUP_WATCH_INTERVAL", "-1", "JITAD_GROUP_WATCH_INTERVAL must be 0 (off) or a number of seconds"),
    ("JITAD_ENROLMENT_CODE_HOURS", "0", "JITAD_ENROLMENT_CODE_HOURS must be between 1 and 720"),
    ("JITAD_ENROLMENT_CODE_MAX_ATTEMPTS", "0", "JITAD_ENROLMENT_CODE_MAX_ATTEMPTS must be between 1 and 20"),
])
def test_the_reconciler_limit_is_checked_at_start(tmp_path, variable, value, message):
    """A share written as a percentage would turn the reconciler's brake off: refused at start."""
    assert_refused(run_setup(tmp_path, {variable: value}), message)


@pytest.mark.parametrize("value, bound", [(None, True), ("0", False)])
def test_postgresql_binds_parameters_on_the_server_unless_turned_off(tmp_path, value, bound):
    """GIVEN a PostgreSQL URL WHEN Django starts THEN statements and their parameters travel apart (the
    client does not quote id lists and arrays into the SQL), never prepared on the server; an operator
    can turn it off."""
    code = ("import json, django; django.setup(); from django.conf import settings; "
            "print(json.dumps(settings.DATABASES['default'].get('OPTIONS', {})))")
    extra = {"JITAD_DATABASE_URL": "postgres://jitad@127.0.0.1:5432/jitad"}
    if value is not None:
        extra["JITAD_DB_SERVER_SIDE_BINDING"] = value
    result = run_setup(tmp_path, extra, code=code)
    assert result.returncode == 0, result.stderr[-3000:]
    options = json.loads(result.stdout.strip().splitlines()[-1])
    libpq = {"connect_timeout": 10, "gssencmode": "disable"}  # bounded connects; no GSSAPI with jitad's own tickets
    if bound:
        assert options == {"server_side_binding": True, "prepare_threshold": None, **libpq}
    else:
        assert options == libpq


def test_the_database_url_can_ask_for_gssapi_and_a_longer_connect(tmp_path):
    code = ("import json, django; django.setup(); from django.conf import settings; "
            "print(json.dumps(settings.DATABASES['default'].get('OPTIONS', {})))")
    extra = {"JITAD_DATABASE_URL": "postgres://jitad@127.0.0.1:5432/jitad?gssencmode=prefer&connect_timeout=30"}
    result = run_setup(tmp_path, extra, code=code)
    assert result.returncode == 0, result.stderr[-3000:]
    options = json.loads(result.stdout.strip().splitlines()[-1])
    assert options["gssencmode"] == "prefer" and str(options["connect_timeout"]) == "30"


@pytest.mark.django_db
def test_this_suite_runs_postgresql_with_the_server_binding_cursor():
    """Where the suite runs on PostgreSQL (CI), every query of it goes through server-side binding."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("SQLite binds parameters its own way")
    from django.db.backends.postgresql.base import ServerBindingCursor

    with connection.cursor() as cursor:
        assert isinstance(cursor.cursor, ServerBindingCursor)


def test_production_warns_when_counters_are_per_process(tmp_path):
    """GIVEN production settings without PROMETHEUS_MULTIPROC_DIR WHEN the system checks run THEN a warning
    (jitad.health.W001) says /metrics would show one process's counters; with it set THEN none, and jitad
    creates the folder."""
    base = {**PRODUCTION, "JITAD_TRUSTED_PROXIES": "10.0.0.5"}
    result = run_setup(tmp_path, base, CHECK)
    assert result.returncode == 0 and "jitad.health.W001" in result.stderr, result.stderr[-2000:]
    folder = tmp_path / "metrics"
    result = run_setup(tmp_path, {**base, "PROMETHEUS_MULTIPROC_DIR": str(folder)}, CHECK)
    assert result.returncode == 0 and "jitad.health.W001" not in result.stderr, result.stderr[-2000:]
    assert folder.is_dir()


def test_a_bad_log_format_or_network_list_is_refused_at_start(tmp_path):
    """A typo in JITAD_LOG_FORMAT or in a network list of /readyz and /metrics stops the process with the
    variable named: it must not open (or close) an endpoint silently."""
    assert_refused(run_setup(tmp_path, {"JITAD_LOG_FORMAT": "xml"}), "JITAD_LOG_FORMAT must be plain or json")
    assert_refused(run_setup(tmp_path, {"JITAD_METRICS_ALLOWED_NETWORKS": "10.0.0.0/8,everyone"}),
                   "JITAD_METRICS_ALLOWED_NETWORKS: 'everyone' is not an IP address or network")


# Several problems of different kinds at once: a missing production variable, a number that is not one,
# a switch that is neither true nor false, a value out of its range, an unreadable key file, a SIEM URL.
MANY_PROBLEMS = {
    **without("JITAD_SECRET_KEY", "JITAD_VAULT_KEYS"),
    "JITAD_SWEEP_INTERVAL": "five",
    "JITAD_SECURE_COOKIES": "maybe",
    "JITAD_LEASE_SECONDS": "1",
    "JITAD_VAULT_KEYS_FILE": "/nonexistent/vault.keys",
    "JITAD_SIEM_MAIN_URL": "ftp://siem.example.test",
    "JITAD_REPORT_WORK_DAYS": "1,2,x",
}
MANY_MESSAGES = [
    "JITAD_SECRET_KEY must be set in production",
    "JITAD_SWEEP_INTERVAL='five' is not a number",
    "JITAD_SECURE_COOKIES='maybe' is not true or false",
    "JITAD_LEASE_SECONDS must be at least 3",
    "JITAD_VAULT_KEYS_FILE=/nonexistent/vault.keys: cannot be read",
    "JITAD_SIEM_MAIN_URL must be syslog+tls://host:port",
    "JITAD_REPORT_WORK_DAYS is not a list of whole numbers",
]


def assert_every_problem(text: str) -> None:
    assert "jitad cannot start: 7 problems in its configuration" in text, text[-3000:]
    for message in MANY_MESSAGES:
        assert message in text, (message, text[-3000:])


def test_manage_py_lists_every_problem_at_once_without_a_traceback(tmp_path):
    """GIVEN an environment with seven problems of different kinds WHEN manage.py starts (any command) THEN it
    exits 78 (configuration) having printed all seven, one a line, and no traceback: one pass fixes them all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JITAD_", "CELERY_", "DJANGO_"))}
    env.update(MANY_PROBLEMS, JITAD_VAR_DIR=str(tmp_path / "var"))
    for command in (["check"], ["jitad_audit_verify"]):
        result = subprocess.run([sys.executable, "manage.py", *command], cwd=REPO, env=env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 78, (command, result.returncode, result.stderr[-3000:])
        assert_every_problem(result.stderr)
        assert "Traceback" not in result.stderr


def test_web_and_workers_list_every_problem_at_once(tmp_path):
    """GIVEN the same environment WHEN the web application (wsgi) or a Celery worker loads THEN it fails once,
    and the one error names all seven problems."""
    web = run_setup(tmp_path, MANY_PROBLEMS, code="import jitad.wsgi")
    assert web.returncode != 0
    assert_every_problem(web.stderr)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JITAD_", "CELERY_", "DJANGO_"))}
    env.update(MANY_PROBLEMS, JITAD_VAR_DIR=str(tmp_path / "var"))
    worker = subprocess.run([sys.executable, "-m", "celery", "-A", "jitad", "worker", "--pool", "solo", "-l", "warning"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert worker.returncode != 0
    assert_every_problem(worker.stderr)


@pytest.mark.parametrize("variable, value, message", [
    ("JITAD_DATABASE_URL", "nosuchdb://user:s3cret@db/x", "JITAD_DATABASE_URL is not a database URL"),
    ("JITAD_EMAIL_URL", "nosuch://user:s3cret@smtp", "JITAD_EMAIL_URL is not a mail URL"),
])
def test_a_url_that_cannot_be_read_is_refused_without_quoting_it(tmp_path, variable, value, message):
    """A database or mail URL carries a password: the refusal names the variable, never the value."""
    result = run_setup(tmp_path, {variable: value})
    assert_refused(result, message)
    assert "s3cret" not in result.stderr


def _keytab(tmp_path, mode: int = 0o600, name: str = "jitad.keytab") -> str:
    path = tmp_path / name
    path.write_bytes(b"\x05\x02")  # a keytab's version header: the settings check the file, not its keys
    path.chmod(mode)
    return str(path)


def _kerberos(tmp_path, **changes) -> dict[str, str]:
    values = {"JITAD_KERBEROS_REALM": "EXAMPLE.TEST", "JITAD_KERBEROS_KDCS": "dc1.example.test,dc2.example.test:88",
              "JITAD_KERBEROS_PRINCIPAL": "svc-jitad@EXAMPLE.TEST", "JITAD_KERBEROS_KEYTAB": _keytab(tmp_path)}
    values.update(changes)
    return values


def test_production_binds_with_kerberos_and_no_password(tmp_path):
    """GIVEN JITAD_LDAP_AUTH=kerberos with a realm, principal and keytab WHEN production starts without a bind DN
    or password THEN it starts."""
    extra = {**without("JITAD_LDAP_BIND_DN", "JITAD_LDAP_BIND_PASSWORD"), **_kerberos(tmp_path),
             "JITAD_LDAP_AUTH": "kerberos"}
    result = run_setup(tmp_path, extra)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("changes, message", [
    ({"JITAD_KERBEROS_REALM": ""}, "JITAD_KERBEROS_KDCS, JITAD_KERBEROS_PRINCIPAL, JITAD_KERBEROS_KEYTAB set but "
                                   "JITAD_KERBEROS_REALM is empty"),
    ({"JITAD_KERBEROS_REALM": "example.test"}, "the DNS domain in capitals"),
    ({"JITAD_KERBEROS_PRINCIPAL": ""}, "JITAD_KERBEROS_PRINCIPAL must be set"),
    ({"JITAD_KERBEROS_PRINCIPAL": "EXAMPLE\\svc-jitad"}, "write it as name@REALM"),
    ({"JITAD_KERBEROS_KEYTAB": "/nonexistent/jitad.keytab"}, "JITAD_KERBEROS_KEYTAB=/nonexistent/jitad.keytab"),
    ({"JITAD_KERBEROS_KDCS": "dc1.example.test:notaport"}, "JITAD_KERBEROS_KDCS: 'dc1.example.test:notaport'"),
    ({"JITAD_KERBEROS_CCACHE": "/var/lib/jitad/cc"}, "a credential cache name with its type"),
    ({"JITAD_KERBEROS_TIMEOUT": "0"}, "JITAD_KERBEROS_TIMEOUT=0: seconds between 0.5 and 300"),
])
def test_kerberos_settings_are_checked_at_start(tmp_path, changes, message):
    assert_refused(run_setup(tmp_path, _kerberos(tmp_path, **changes)), message)


def test_a_credential_cache_kept_elsewhere_stands_for_the_keytab(tmp_path):
    """GIVEN no keytab but a credential cache named explicitly (k5start or gssproxy keeps it filled) THEN jitad starts."""
    extra = {**_kerberos(tmp_path), "JITAD_KERBEROS_KEYTAB": "", "JITAD_KERBEROS_CCACHE": "KEYRING:persistent:990"}
    result = run_setup(tmp_path, extra)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_keytab_others_can_read_is_refused(tmp_path):
    """The keytab is the service account's password: a file anyone on the machine can read is refused."""
    extra = _kerberos(tmp_path, JITAD_KERBEROS_KEYTAB=_keytab(tmp_path, 0o644, "open.keytab"))
    assert_refused(run_setup(tmp_path, extra), "can be read by anyone on this machine (mode 644)")


@pytest.mark.parametrize("extra, message", [
    ({"JITAD_LDAP_AUTH": "kerberos"}, "JITAD_LDAP_AUTH=kerberos needs JITAD_KERBEROS_REALM"),
    ({"JITAD_LDAP_AUTH": "gssapi"}, "JITAD_LDAP_AUTH='gssapi': one of password, kerberos"),
    ({"JITAD_WINRM_MESSAGE_ENCRYPTION": "never"}, "JITAD_WINRM_MESSAGE_ENCRYPTION='never': auto or always"),
    ({"JITAD_WINRM_PROFILE_LEGACY_ALLOW_NTLM": "sometimes"}, "JITAD_WINRM_PROFILE_LEGACY_ALLOW_NTLM='sometimes'"),
])
def test_directory_and_winrm_authentication_settings_are_checked_at_start(tmp_path, extra, message):
    assert_refused(run_setup(tmp_path, extra), message)


def test_ntlm_is_allowed_per_profile_only_when_asked(tmp_path):
    code = ("import django; django.setup(); from django.conf import settings; import json; "
            "print(json.dumps({k: v['allow_ntlm'] for k, v in settings.JITAD_WINRM_PROFILES.items()}))")
    result = run_setup(tmp_path, {"JITAD_WINRM_PROFILE_LEGACY_ALLOW_NTLM": "true",
                                  "JITAD_WINRM_PROFILE_TIER0_USERNAME": "EXAMPLE\\svc"}, code)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"default": False, "legacy": True, "tier0": False}
