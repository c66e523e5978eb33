"""What an installation check asks the DCs (``manage.py jitad_check``): each DC's certificate and bind, and
what the service account may do under the JIT OU, asked of the DC itself and changing nothing.

The rights come from the DC's own answer: ``allowedAttributesEffective`` on an entry lists the attributes
the bound account may write there, ``allowedChildClassesEffective`` the classes it may create under it
(computed by the DC from the entry's security descriptor and the account's groups, on Windows AD and Samba
alike). Nothing is written, so nothing is left behind and no change feed sees a thing.
"""
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ldap3 import BASE, SUBTREE
from ldap3.core.exceptions import LDAPSizeLimitExceededResult

from .client import Directory
from .config import DirectoryConfig
from .connection import _open, _tls
from .errors import DirectoryError, DirectoryRejected, translate
from .managed import jit_ous


@dataclass
class DCReport:
    """One DC as the check found it: ``error`` empty if it answered and accepted the bind."""

    url: str
    error: str = ""
    refused: bool = False  # the DC answered and refused (the bind, the certificate): not an outage
    subject: str = ""
    names: list[str] = field(default_factory=list)
    issuer: str = ""
    not_after: datetime | None = None
    seconds: float = 0.0


@dataclass
class OURights:
    """The service account's rights under one JIT OU: ``error`` if the OU could not be read."""

    ou: str
    error: str = ""
    groups: int = 0  # groups found under the OU (at most the sample)
    cannot_write_member: list[str] = field(default_factory=list)
    child_classes: list[str] = field(default_factory=list)


def _name(rdns) -> str:
    return ",".join("+".join(f"{k}={v}" for k, v in rdn) for rdn in rdns)


def _certificate(conn, report: DCReport) -> None:
    sock = conn.socket
    cert = sock.getpeercert() if isinstance(sock, ssl.SSLSocket) else None
    if not cert:
        return
    report.subject = _name(cert.get("subject", ()))
    report.issuer = _name(cert.get("issuer", ()))
    report.names = [value for kind, value in cert.get("subjectAltName", ()) if kind in ("DNS", "IP Address")]
    report.not_after = datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), tz=timezone.utc)


def dc_reports(config: DirectoryConfig | None = None) -> list[DCReport]:
    """Each configured DC: TLS with validation (CA, name, dates), the service account's bind, a root DSE read.

    DirectoryMisconfigured if the settings cannot describe a validated connection at all.
    """
    config = config or DirectoryConfig.from_settings()
    config.check()
    tls = _tls(config)
    reports = []
    for url in config.urls:
        report = DCReport(url=url)
        started = time.monotonic()
        try:
            with translate(f"bind to {url}"):
                conn = _open(url, config, tls, config.bind_dn, config.bind_password)
                try:
                    _certificate(conn, report)
                    conn.search("", "(objectClass=*)", BASE, attributes=["currentTime"])
                finally:
                    conn.unbind()
        except DirectoryRejected as e:
            report.error, report.refused = str(e), True
        except DirectoryError as e:
            report.error = str(e)
            # A certificate that does not validate is ours to fix, not an outage.
            report.refused = "CERTIFICATE_VERIFY_FAILED" in str(e) or "certificate verify failed" in str(e)
        report.seconds = time.monotonic() - started
        reports.append(report)
    return reports


def _values(entry: dict, name: str) -> list[str]:
    attrs = entry.get("attributes", {})
    value = next((v for k, v in attrs.items() if k.lower() == name.lower()), [])
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def jit_ou_rights(d: Directory, *, sample: int = 50) -> list[OURights]:
    """For each JIT OU: does it exist, which of (up to ``sample``) groups under it the bound account may
    not change the members of, and which classes it may create directly under it (the ephemeral OU)."""
    found = []
    for ou in jit_ous(d.config.jit_ou):
        rights = OURights(ou=ou)
        try:
            entries = d._search(ou, "(objectClass=*)", BASE, attributes=["allowedChildClassesEffective"],
                                operation=f"read {ou}")
            if not entries:
                rights.error = "the OU does not exist, or the service account cannot read it"
                found.append(rights)
                continue
            rights.child_classes = _values(entries[0], "allowedChildClassesEffective")
            with translate(f"read the groups under {ou}"):
                try:
                    d._conn.search(ou, "(objectClass=group)", SUBTREE, attributes=["allowedAttributesEffective"],
                                   size_limit=sample)
                except LDAPSizeLimitExceededResult:
                    pass  # the first ``sample`` groups came back, which is what was asked
        except DirectoryError as e:
            rights.error = str(e)
            found.append(rights)
            continue
        groups = [r for r in d._conn.response or [] if r.get("type") == "searchResEntry"]
        rights.groups = len(groups)
        for g in groups:
            if "member" not in {a.lower() for a in _values(g, "allowedAttributesEffective")}:
                rights.cannot_write_member.append(g["dn"])
        found.append(rights)
    return found

