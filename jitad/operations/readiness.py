"""The readiness report of ``manage.py jitad_check``: each part of an installation, checked as it is now.

Settings and the database (Django's system checks, migrations), the broker (it takes a message), every DC (TLS, certificate, bind), the
service account's rights under the JIT OU (the DC's own answer, nothing written), the WinRM profiles and
endpoints (files, transports, a TLS handshake; nothing run), a site's own krb5.conf (does DNS choose the
servers jitad asks tickets for?), the alert destinations (without sending),
and the vault keys (a value sealed and opened, stored values opened). Each finding is ok, a warning, a
problem (to fix here) or unreachable (a part that did not answer).
"""
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from django.conf import settings

OK, WARNING, PROBLEM, UNREACHABLE = "ok", "warning", "problem", "unreachable"
# A DC certificate that ends sooner than this is a warning.
CERTIFICATE_WARN_DAYS = 30
# Stored sealed values opened per field by the quick check (jitad_backup_check opens them all).
VAULT_SAMPLE = 20


@dataclass(frozen=True)
class Finding:
    area: str
    subject: str
    status: str
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


def _settings_checks() -> list[Finding]:
    from django.core import checks
    from django.db import DatabaseError

    try:
        messages = checks.run_checks(include_deployment_checks=settings.PRODUCTION, databases=["default"])
    except DatabaseError as e:
        return [Finding("settings", "system checks", UNREACHABLE, f"the database did not answer: {e}")]
    found = []
    for m in messages:
        if m.is_silenced():
            continue
        status = PROBLEM if m.level >= checks.ERROR else WARNING if m.level >= checks.WARNING else OK
        hint = f" ({m.hint})" if m.hint else ""
        found.append(Finding("settings", m.id or "system check", status, f"{m.msg}{hint}"))
    if not any(f.status in (PROBLEM, WARNING) for f in found):
        found.append(Finding("settings", "system checks", OK, "no problem"))
    return found


def _database() -> list[Finding]:
    from django.db import DatabaseError, connection
    from django.db.migrations.executor import MigrationExecutor

    try:
        connection.ensure_connection()
        plan = MigrationExecutor(connection).migration_plan(MigrationExecutor(connection).loader.graph.leaf_nodes())
    except DatabaseError as e:
        return [Finding("database", connection.vendor, UNREACHABLE, f"did not answer: {e}")]
    if plan:
        return [Finding("database", connection.vendor, PROBLEM,
                        f"{len(plan)} migration(s) not applied: run `manage.py migrate`")]
    name = connection.settings_dict.get("NAME")
    return [Finding("database", connection.vendor, OK, f"{name}: answers, every migration applied")]


def _broker() -> list[Finding]:
    """The broker takes a message now (a write, as /readyz's check does); it is named without its password."""
    from urllib.parse import urlsplit

    from jitad import broker

    parts = urlsplit(settings.CELERY_BROKER_URL)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    shown = f"{parts.scheme}://{parts.hostname or ''}{port}"
    why = broker.probe(deadline=5.0)
    if why:
        return [Finding("broker", shown, UNREACHABLE, f"{why}: no grant, revocation or alert reaches a worker")]
    return [Finding("broker", shown, OK, "takes messages")]


def _certificate(report) -> tuple[str, str]:
    if report.not_after is None:
        return OK, "no certificate was read (StartTLS)"
    days = (report.not_after - datetime.now(timezone.utc)).days
    names = ", ".join(report.names) or report.subject
    text = (f"certificate {report.subject} (names: {names}; issuer {report.issuer}) validated, "
            f"valid until {report.not_after:%Y-%m-%d} ({days} days)")
    return (WARNING if days < CERTIFICATE_WARN_DAYS else OK), text


def _directory() -> list[Finding]:
    from jitad import directory

    if not settings.JITAD_LDAP_URLS:
        return [Finding("directory", "JITAD_LDAP_URLS", WARNING, "no domain controller is configured: nothing can "
                                                                 "be granted")]
    try:
        reports = directory.dc_reports()
    except directory.DirectoryMisconfigured as e:
        return [Finding("directory", "settings", PROBLEM, str(e))]
    found = []
    for r in reports:
        if r.error:
            found.append(Finding("directory", r.url, PROBLEM if r.refused else UNREACHABLE, r.error))
            continue
        status, text = _certificate(r)
        found.append(Finding("directory", r.url, status,
                             f"bound as {settings.JITAD_LDAP_BIND_DN} in {r.seconds * 1000:.0f} ms; {text}"))
    if not any(not r.error for r in reports):
        return found
    try:
        with directory.connect() as d:
            rights = directory.jit_ou_rights(d)
    except directory.DirectoryError as e:
        return found + [Finding("directory", "JIT OU", UNREACHABLE, str(e))]
    if not rights:
        found.append(Finding("directory", "JITAD_LDAP_JIT_OU", WARNING, "no JIT OU is set: jitad manages no group"))
    for r in rights:
        if r.error:
            found.append(Finding("directory", r.ou, PROBLEM, r.error))
        elif r.cannot_write_member:
            shown = "; ".join(r.cannot_write_member[:5]) + (" ..." if len(r.cannot_write_member) > 5 else "")
            found.append(Finding("directory", r.ou, PROBLEM,
                                 f"the service account may not change the members of {len(r.cannot_write_member)} of "
                                 f"{r.groups} group(s) under it: {shown} (ops/README.md, delegating the JIT OU)"))
        elif not r.groups:
            found.append(Finding("directory", r.ou, WARNING, "no group under it yet: the right to change members is "
                                                             "checked once one exists"))
        else:
            creates = f"; may create {', '.join(sorted(r.child_classes))} here" if r.child_classes else ""
            found.append(Finding("directory", r.ou, OK, f"the service account may change the members of all "
                                                        f"{r.groups} group(s) checked under it{creates}"))
    return found


def _hosts() -> list[Finding]:
    from jitad import hosts
    from jitad.elevation.models import Target

    found = []
    for name, profile in sorted(settings.JITAD_WINRM_PROFILES.items()):
        if not any(profile.values()):
            continue
        missing = [f"{label} {path!r}" for label, path in (("CA bundle", profile.get("ca_bundle")),
                                                              ("client certificate", profile.get("cert_pem")),
                                                              ("client key", profile.get("cert_key_pem")))
                   if path and not os.path.isfile(path)]
        if missing:
            found.append(Finding("hosts", f"profile {name}", PROBLEM, "no such file: " + ", ".join(missing)))
        else:
            found.append(Finding("hosts", f"profile {name}", OK, "credentials set" + (
                ", CA bundle present" if profile.get("ca_bundle") else "")))
    endpoints = (Target.objects.exclude(winrm_url="").order_by("winrm_url")
                 .values_list("winrm_url", "winrm_transport", "winrm_profile").distinct())
    for url, transport, profile in endpoints[:200]:
        transport = transport or "kerberos"  # as hosts.config_for reads a blank one
        subject = f"{url} ({transport}, profile {profile or 'default'})"
        try:
            config = hosts.config_for(url=url, transport=transport, profile=profile)
            config.check()
            line = hosts.endpoint_reach(config)
        except hosts.HostUnreachable as e:
            found.append(Finding("hosts", subject, UNREACHABLE, str(e)))
            continue
        except hosts.HostError as e:
            found.append(Finding("hosts", subject, PROBLEM, str(e)))
            continue
        if transport == "ntlm":
            found.append(Finding("hosts", subject, WARNING, f"{line}; NTLM is deprecated (Kerberos where the host "
                                                            "allows it)"))
        else:
            found.append(Finding("hosts", subject, OK, line))
    if not found:
        found.append(Finding("hosts", "WinRM", OK, "no WinRM profile or endpoint is configured"))
    return found


def _kerberos() -> list[Finding]:
    from jitad import kerberos

    if not kerberos.enabled():
        return []
    path = settings.JITAD_KERBEROS_CONFIG
    if not path:
        return [Finding("kerberos", "krb5.conf", OK, "written by jitad: servers named as configured (no DNS "
                                                     "canonicalisation, no reverse DNS)")]
    try:
        warnings = kerberos.config_warnings(path)
    except OSError as e:
        return [Finding("kerberos", f"JITAD_KERBEROS_CONFIG={path}", PROBLEM, f"cannot be read: {e.strerror}")]
    if not warnings:
        return [Finding("kerberos", f"JITAD_KERBEROS_CONFIG={path}", OK, "servers named as configured "
                                                                        "(dns_canonicalize_hostname and rdns false)")]
    return [Finding("kerberos", f"JITAD_KERBEROS_CONFIG={path}", WARNING, w) for w in warnings]


def _destinations() -> list[Finding]:
    from jitad.notifications.probe import destinations_reach

    found = [Finding("notifications", f"{d.variable} {d.shown}", d.status, d.detail) for d in destinations_reach()]
    if not settings.JITAD_ALERT_URLS:
        found.insert(0, Finding("notifications", "JITAD_ALERT_URLS", PROBLEM if settings.PRODUCTION else WARNING,
                                "no security channel: failed revocations and break-glass alerts reach nobody"))
    return found


def _vault() -> list[Finding]:
    from jitad import vault

    try:
        ids = vault.key_ids()
        probe = secrets.token_bytes(16)
        if vault.unseal(ref="jitad-check", token=vault.seal(ref="jitad-check", plaintext=probe)) != probe:
            raise vault.VaultError("a value sealed now did not open to itself")
    except vault.VaultError as e:
        return [Finding("vault", "JITAD_VAULT_KEYS", PROBLEM, str(e))]
    found = [Finding("vault", "JITAD_VAULT_KEYS", OK, f"{len(ids)} key(s) ({', '.join(ids)}); the first seals, and a "
                                                      "value sealed now opens")]
    for name, counts in vault.sealed_values_open(limit=VAULT_SAMPLE).items():
        if counts["failed"]:
            found.append(Finding("vault", name, PROBLEM, f"{counts['unopened']} of the values tried do not open: "
                                                         + "; ".join(counts["failed"][:3])))
        elif counts["values"]:
            found.append(Finding("vault", name, OK, f"{counts['opened']} of {counts['values']} stored value(s) opened"))
    return found


def readiness_check() -> list[Finding]:
    """Every finding, part by part; a part that raises unexpectedly is a problem of its own, the rest still run."""
    from django.db import DatabaseError

    found = []
    for part in (_database, _settings_checks, _broker, _directory, _hosts, _kerberos, _destinations, _vault):
        try:
            found += part()
        except DatabaseError as e:
            found.append(Finding(part.__name__.strip("_"), "database", UNREACHABLE, f"the database did not answer: {e}"))
        except Exception as e:  # noqa: BLE001 - one broken part must not hide the others' findings
            found.append(Finding(part.__name__.strip("_"), "check", PROBLEM, f"{type(e).__name__}: {e}"))
    return found
