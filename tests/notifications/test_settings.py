"""Mail and notification settings from the environment (a fresh interpreter per case)."""
import json

from tests.test_settings import PRODUCTION, run_setup

REPORT = """
import json, logging
import django
django.setup()
from django.conf import settings
print(json.dumps({k: str(getattr(settings, k, None)) for k in (
    "EMAIL_BACKEND", "EMAIL_FILE_PATH", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_USE_TLS", "EMAIL_HOST_USER",
    "EMAIL_TIMEOUT", "DEFAULT_FROM_EMAIL", "JITAD_APPROVAL_URLS", "JITAD_NOTIFY_DESTINATIONS",
    "JITAD_EXPIRY_WARNING_MINUTES", "JITAD_DELIVERY_MAX_ATTEMPTS")} | {
    "apprise_reaches_root": logging.getLogger("apprise").propagate,
    "urllib3_debug": logging.getLogger("urllib3").isEnabledFor(logging.DEBUG),
}))
"""


def _report(tmp_path, extra):
    result = run_setup(tmp_path, extra, REPORT)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_defaults_keep_mail_on_the_machine_and_urls_out_of_the_logs(tmp_path):
    got = _report(tmp_path, {"JITAD_LOG_LEVEL": "DEBUG"})
    assert got["EMAIL_BACKEND"] == "django.core.mail.backends.filebased.EmailBackend"
    assert got["EMAIL_FILE_PATH"] == str(tmp_path / "var" / "mail")
    assert got["DEFAULT_FROM_EMAIL"] == "jitad@localhost"
    assert (got["JITAD_EXPIRY_WARNING_MINUTES"], got["JITAD_DELIVERY_MAX_ATTEMPTS"]) == ("15", "5")
    # apprise and urllib3 print destination URLs (tokens included) at DEBUG: never in our logs
    assert got["apprise_reaches_root"] is False and got["urllib3_debug"] is False


def test_smtp_and_destinations_from_the_environment(tmp_path):
    got = _report(tmp_path, {
        "JITAD_EMAIL_URL": "smtp+tls://jitad:pw@smtp.example.test:587", "JITAD_EMAIL_FROM": "jitad@example.test",
        "JITAD_DELIVERY_TIMEOUT": "7", "JITAD_APPROVAL_URLS": "json://a.example.test/x,json://b.example.test/y",
        "JITAD_NOTIFY_DBA_TEAM": "json://c.example.test/z",
    })
    assert got["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (got["EMAIL_HOST"], got["EMAIL_PORT"], got["EMAIL_USE_TLS"], got["EMAIL_HOST_USER"]) == (
        "smtp.example.test", "587", "True", "jitad")
    assert (got["EMAIL_TIMEOUT"], got["DEFAULT_FROM_EMAIL"]) == ("7.0", "jitad@example.test")
    assert got["JITAD_APPROVAL_URLS"] == str(["json://a.example.test/x", "json://b.example.test/y"])
    assert got["JITAD_NOTIFY_DESTINATIONS"] == str({"dba-team": ["json://c.example.test/z"]})


def test_production_without_smtp_is_warned(tmp_path):
    code = "import django; django.setup(); from django.core.management import call_command; call_command('check')"
    production = {**PRODUCTION, "JITAD_TRUSTED_PROXIES": "10.0.0.5"}  # its TLS proxy named: no other check fails
    result = run_setup(tmp_path, production, code)
    assert "jitad.W001" in result.stderr and "JITAD_EMAIL_URL is not set" in result.stderr
    result = run_setup(tmp_path, {**production, "JITAD_EMAIL_URL": "smtp://relay.example.test:25"}, code)
    assert result.returncode == 0 and "jitad.W001" not in result.stderr
