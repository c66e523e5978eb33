"""manage.py jitad_check against the session's real parts: the Samba DC (its certificate, the bind, the service
account's rights under the JIT OU as the DC itself reports them), a WinRM test host over HTTPS, the webhook
receiver behind the alert destinations, and the vault keys. Each problem is found, named, and sets the exit code."""
import json
import os
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jitad import directory
from jitad.commands import ExitCode

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def run_check(*args) -> tuple[int, dict, str]:
    """(exit code, the JSON document, the text output) of one jitad_check run in this process."""
    docs = []
    for fmt in ("json", "text"):
        out = StringIO()
        try:
            call_command("jitad_check", "--format", fmt, stdout=out, stderr=StringIO(), no_color=True)
            code = 0
        except CommandError as e:
            code = e.returncode
        docs.append(out.getvalue())
    doc = json.loads(docs[0])
    assert doc["exit_code"] == code and doc["ok"] is (code == 0)
    return code, doc, docs[1]


def finding(doc: dict, area: str, subject: str) -> dict:
    found = [c for c in doc["checks"] if c["area"] == area and subject in c["subject"]]
    assert found, (area, subject, doc["checks"])
    return found[0]


@pytest.fixture
def estate(samba_dc, jit_ou, alert_sink, make_host, make_target, winrm_ca):
    """A group under the JIT OU and a target whose WinRM host answers over HTTPS (Kerberos-free, NTLM)."""
    host = make_host(tls=True)
    return make_target(winrm_url=host.url, winrm_transport="ntlm")


def test_a_ready_installation(estate, samba_dc):
    """GIVEN the session's DC, a JIT group, a WinRM host over HTTPS, the webhook destinations and the vault WHEN
    jitad_check runs THEN nothing is a problem (exit 0), the DC's certificate is named with its expiry, the
    service account may change the members of the groups under the OU, the WinRM host's certificate validated
    (NTLM warned about), and the security channel's server answered."""
    code, doc, text = run_check()
    problems = [c for c in doc["checks"] if c["status"] in ("problem", "unreachable")]
    assert code == 0 and not problems, problems
    dc = finding(doc, "directory", samba_dc.ldaps_url)
    assert dc["status"] == "ok" and samba_dc.tls_name in dc["detail"] and "valid until" in dc["detail"]
    ou = finding(doc, "directory", samba_dc.jit_ou)
    assert ou["status"] == "ok" and "may change the members of all" in ou["detail"]
    host = finding(doc, "hosts", estate.winrm_url)
    assert host["status"] == "warning" and "certificate valid" in host["detail"] and "NTLM" in host["detail"]
    alert = finding(doc, "notifications", "JITAD_ALERT_URLS[0]")
    assert alert["status"] == "ok" and "answers" in alert["detail"]
    assert finding(doc, "vault", "JITAD_VAULT_KEYS")["status"] == "ok"
    assert finding(doc, "broker", "")["status"] == "ok"
    assert set(doc) >= {"ok", "exit_code", "version", "environment", "counts", "checks"}
    assert "ready: 0 problem(s)" in text and samba_dc.ldaps_url in text


def test_an_account_without_the_delegation_is_a_problem_until_it_has_it(estate, samba_dc, settings):
    """GIVEN jitad bound as an account with no right under the JIT OU WHEN jitad_check runs THEN the OU is a
    problem naming a group whose members it may not change (exit 1), with nothing written to the DC; after the
    delegation ops/README.md documents, the same check passes."""
    from tests.directory.test_delegation import documented_recipe, with_values

    tag = uuid.uuid4().hex[:6]
    password = "Svc-" + uuid.uuid4().hex
    with directory.connect() as d:
        account = d.ensure_user(f"svcchk{tag}", f"CN=Users,{samba_dc.base_dn}", password=password)
    settings.JITAD_LDAP_BIND_DN, settings.JITAD_LDAP_BIND_PASSWORD = account, password

    code, doc, text = run_check()
    assert code == ExitCode.PROBLEMS
    ou = finding(doc, "directory", samba_dc.jit_ou)
    # It names the first five groups it may not change: on a DC other tests filled, not always this estate's.
    assert ou["status"] == "problem" and "may not change the members" in ou["detail"], ou
    named = ou["detail"].split("under it:", 1)[1]
    assert named.strip().startswith("CN=") and samba_dc.jit_ou in named, ou
    assert doc["counts"]["problem"] >= 1

    script = with_values(documented_recipe(), JIT_OU=samba_dc.jit_ou, ACCOUNT=f"svcchk{tag}")
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "SMB_CONF_PATH": str(samba_dc.smb_conf)})
    assert run.returncode == 0, run.stderr[-2000:]
    code, doc, _ = run_check()
    assert finding(doc, "directory", samba_dc.jit_ou)["status"] == "ok"


def test_a_dc_that_does_not_answer_is_unreachable_and_a_wrong_ca_a_problem(estate, samba_dc, winrm_ca, settings):
    """GIVEN a second DC URL on a closed port WHEN jitad_check runs THEN that DC is unreachable and, nothing else
    being wrong, the exit code says so (69); GIVEN a CA that did not sign the DC's certificate THEN the DC is a
    problem (exit 1): a certificate is ours to fix, not an outage."""
    settings.JITAD_LDAP_URLS = [samba_dc.ldaps_url, "ldaps://127.0.0.1:1"]
    code, doc, _ = run_check()
    assert finding(doc, "directory", "ldaps://127.0.0.1:1")["status"] == "unreachable"
    assert finding(doc, "directory", samba_dc.ldaps_url)["status"] == "ok"
    assert code == ExitCode.UNREACHABLE, [c for c in doc["checks"] if c["status"] != "ok"]

    settings.JITAD_LDAP_URLS = [samba_dc.ldaps_url]
    settings.JITAD_LDAP_CA_FILE = str(winrm_ca.ca)
    code, doc, _ = run_check()
    dc = finding(doc, "directory", samba_dc.ldaps_url)
    assert code == ExitCode.PROBLEMS and dc["status"] == "problem" and "certificate" in dc["detail"].lower(), dc


def test_a_broker_that_does_not_answer_is_unreachable_and_named_without_its_password(estate, settings):
    """GIVEN a Redis broker URL (with a password) on a closed port WHEN jitad_check runs THEN the broker is
    unreachable, named by host and port, never with its password, and the exit code says unreachable (69)."""
    settings.CELERY_BROKER_URL = "redis://:broker-secret@127.0.0.1:1/0"
    code, doc, text = run_check()
    broker = finding(doc, "broker", "redis://127.0.0.1:1")
    assert broker["status"] == "unreachable" and "127.0.0.1:1" in broker["detail"], broker
    assert "broker-secret" not in json.dumps(doc) and "broker-secret" not in text
    assert code == ExitCode.UNREACHABLE, [c for c in doc["checks"] if c["status"] != "ok"]


def test_destinations_and_vault_keys(estate, settings, make_user):
    """GIVEN an alert URL apprise cannot read and a webhook on a closed port WHEN jitad_check runs THEN each is
    named (the URLs masked: the path's token is never shown), exit 1. GIVEN a stored MFA key sealed under a key
    the vault no longer holds THEN the vault is a problem naming the field, though a value sealed now opens."""
    from jitad import vault
    from tests.support.mfa import totp_device

    settings.JITAD_ALERT_URLS = [*settings.JITAD_ALERT_URLS, "nosuchscheme://x/y", "json://127.0.0.1:1/hook-secret"]
    code, doc, text = run_check()
    assert finding(doc, "notifications", "JITAD_ALERT_URLS[1]")["status"] == "problem"
    closed = finding(doc, "notifications", "JITAD_ALERT_URLS[2]")
    assert closed["status"] == "unreachable" and "hook-secret" not in json.dumps(doc) and "hook-secret" not in text
    assert code == ExitCode.PROBLEMS

    totp_device(make_user("vaultcheck"))
    settings.JITAD_VAULT_KEYS = [vault.key_generate()]
    code, doc, _ = run_check()
    assert finding(doc, "vault", "JITAD_VAULT_KEYS")["status"] == "ok"  # the new key seals and opens
    keys = finding(doc, "vault", "MFA authenticator keys")
    assert keys["status"] == "problem" and "not in JITAD_VAULT_KEYS" in keys["detail"], keys
    assert code == ExitCode.PROBLEMS


def test_bad_usage_exits_2(tmp_path):
    """From the shell: an unknown option is bad usage (2), not a problem found (1)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JITAD_", "CELERY_", "DJANGO_"))}
    env["JITAD_VAR_DIR"] = str(tmp_path / "var")
    result = subprocess.run([sys.executable, "manage.py", "jitad_check", "--format", "yaml"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == ExitCode.USAGE, result.stderr[-2000:]
    assert "invalid choice" in result.stderr


def test_a_sites_own_krb5_conf_that_lets_dns_choose_servers_is_a_warning(settings, tmp_path):
    """GIVEN JITAD_KERBEROS_CONFIG naming a krb5.conf that leaves dns_canonicalize_hostname and rdns at MIT's defaults
    (true) WHEN jitad_check reads it THEN a warning for each, saying what to set; with both false (and realm-specific
    blocks, comments, a final marker) THEN ok; with jitad's own krb5.conf THEN ok."""
    from jitad.operations.readiness import OK, WARNING, _kerberos

    settings.JITAD_KERBEROS_REALM = "JITAD.TEST"
    conf = tmp_path / "krb5.conf"
    settings.JITAD_KERBEROS_CONFIG = str(conf)
    conf.write_text("[libdefaults]\n    default_realm = JITAD.TEST\n    dns_lookup_kdc = true\n"
                    "[realms]\n    JITAD.TEST = {\n        kdc = dc1.jitad.test\n        rdns = false\n    }\n")
    found = _kerberos()
    assert [f.status for f in found] == [WARNING, WARNING]
    assert "dns_canonicalize_hostname = true (the default)" in found[0].detail and "set it to false" in found[0].detail
    assert found[1].detail.startswith("rdns = true (the default)")

    conf.write_text("# site file\n[libdefaults]\n  default_realm = JITAD.TEST\n  JITAD.TEST = {\n    rdns = true\n  }\n"
                    "  dns_canonicalize_hostname* = False\n  rdns = no\n  rdns = yes\n[realms]\n")
    assert [(f.status, f.subject) for f in _kerberos()] == [(OK, f"JITAD_KERBEROS_CONFIG={conf}")]
    conf.write_text("[libdefaults]\n dns_canonicalize_hostname = fallback\n rdns = false\n")
    assert [f.status for f in _kerberos()] == [WARNING]

    settings.JITAD_KERBEROS_CONFIG = ""
    assert [f.status for f in _kerberos()] == [OK]
