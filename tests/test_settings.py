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
    "JITAD_BASE_URL": "https://jitad.example.test",
    "JITAD_BREAKGLASS_KEYS": "A" * 43 + "=",  # a well-formed Fernet key (32 zero bytes), for these tests only
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
}))
"""


def run_setup(tmp_path, extra: dict[str, str], code: str = "import django; django.setup()"):
    """``django.setup()`` with jitad.settings in a child whose environment has no JITAD_* or
    CELERY_* variable except ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JITAD_", "CELERY_", "DJANGO_"))}
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


def test_production_needs_the_breakglass_vault_key(tmp_path):
    assert_refused(run_setup(tmp_path, without("JITAD_BREAKGLASS_KEYS")), "JITAD_BREAKGLASS_KEYS")


def test_a_malformed_vault_key_is_refused_at_start(tmp_path):
    assert_refused(run_setup(tmp_path, {**PRODUCTION, "JITAD_BREAKGLASS_KEYS": "not-a-key"}), "key 1 of JITAD_BREAKGLASS_KEYS")


def test_vault_keys_from_a_file(tmp_path):
    keys = tmp_path / "vault-keys"
    keys.write_text("# newest first\n" + "B" * 43 + "=\n" + "A" * 43 + "=\n")
    code = "import django; django.setup(); from django.conf import settings; print(settings.JITAD_BREAKGLASS_KEYS)"
    result = run_setup(tmp_path, {**without("JITAD_BREAKGLASS_KEYS"), "JITAD_BREAKGLASS_KEYS_FILE": str(keys)}, code=code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(["B" * 43 + "=", "A" * 43 + "="])


def test_production_starts_when_everything_is_set(tmp_path):
    result = run_setup(tmp_path, PRODUCTION, code=REPORT)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["engine"] == "django.db.backends.postgresql"
    assert got["broker"] == PRODUCTION["CELERY_BROKER_URL"]
    assert got["secret_key"] == PRODUCTION["JITAD_SECRET_KEY"]
    assert got["debug"] is False
    assert got["secure_cookies"] is True
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
    var = tmp_path / "var"
    assert (var / "broker" / "queue").is_dir()
    key_file = var / "secret_key"
    assert key_file.read_text().strip() == got["secret_key"] and len(got["secret_key"]) >= 40
    assert key_file.stat().st_mode & 0o777 == 0o600

    again = json.loads(run_setup(tmp_path, {}, code=REPORT).stdout.strip().splitlines()[-1])
    assert again["secret_key"] == got["secret_key"]  # stable across restarts
    vault_key = var / "breakglass.keys"  # a generated break-glass vault key, private too
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
