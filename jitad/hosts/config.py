"""How jitad reaches one Windows host: endpoint, transport, credentials, trust, timeouts.

Credentials never live in the database. A target names a *profile*; the profile's
username, password (or client certificate) and CA bundle come from the environment
(``JITAD_WINRM_*`` for the default profile, ``JITAD_WINRM_PROFILE_<NAME>_*`` for others;
see ops/jitad.env.example). Kerberos logs on as jitad's own service principal with its
keytab (jitad/kerberos.py) and names the server by the target's host name. NTLM is refused
unless the profile allows it (``ALLOW_NTLM``).
"""
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

from .errors import HostMisconfigured

TRANSPORTS = ("ntlm", "kerberos", "certificate", "basic")


@dataclass(frozen=True)
class HostConfig:
    """Everything needed to open a WinRM connection to one host."""

    url: str
    transport: str = "ntlm"
    username: str = ""
    password: str = field(default="", repr=False)
    ca_bundle: str = ""
    cert_pem: str = ""
    cert_key_pem: str = ""
    allow_ntlm: bool = False
    # Kerberos: the server's name in its service principal (HTTP/<name>); blank: the URL's host.
    kerberos_host: str = ""
    # Seal every message over https:// too ("always"); over http:// it is always sealed.
    message_encryption: str = "auto"
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    operation_timeout: float = 10.0
    deadline: float = 45.0

    @property
    def https(self) -> bool:
        return urlsplit(self.url).scheme.lower() == "https"

    def check(self) -> None:
        """Refuse settings that would send credentials or commands unprotected."""
        parts = urlsplit(self.url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise HostMisconfigured(f"WinRM URL {self.url!r} is not http(s)://host[:port]/wsman")
        if self.transport not in TRANSPORTS:
            raise HostMisconfigured(f"unknown WinRM transport {self.transport!r} (one of {', '.join(TRANSPORTS)})")
        if self.transport == "ntlm" and not self.allow_ntlm:
            raise HostMisconfigured(
                f"NTLM is refused for {self.url}: its profile does not allow it (ALLOW_NTLM). Use Kerberos, or set "
                "JITAD_WINRM_ALLOW_NTLM / JITAD_WINRM_PROFILE_<NAME>_ALLOW_NTLM=true while the server cannot do Kerberos")
        if self.message_encryption not in ("auto", "always"):
            raise HostMisconfigured(f"WinRM message encryption {self.message_encryption!r}: auto or always")
        if self.transport in ("basic", "certificate") and not self.https:
            raise HostMisconfigured(f"{self.transport} authentication is only allowed over HTTPS ({self.url})")
        if self.transport == "certificate":
            if not (self.cert_pem and self.cert_key_pem):
                raise HostMisconfigured("certificate authentication needs a client certificate and key")
        elif self.transport != "kerberos" and not (self.username and self.password):
            raise HostMisconfigured(f"no WinRM username/password for {self.url}")
        if self.https and not self.ca_bundle:
            raise HostMisconfigured(f"no CA bundle to validate {self.url}'s certificate (JITAD_WINRM_CA_BUNDLE)")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise HostMisconfigured("a WinRM URL carries no user, password, query or fragment")
        for label, path in (("CA bundle", self.ca_bundle), ("client certificate", self.cert_pem),
                            ("client key", self.cert_key_pem)):
            if path and not os.path.isfile(path):
                raise HostMisconfigured(f"the WinRM {label} {path!r} does not exist")
        if not 0 < self.operation_timeout < self.read_timeout:
            raise HostMisconfigured("the WinRM read timeout must exceed the operation timeout")
        if self.deadline <= self.read_timeout:
            raise HostMisconfigured("the WinRM deadline must exceed the read timeout")


def config_for(*, url: str, transport: str = "kerberos", profile: str = "", hostname: str = "") -> HostConfig:
    """A host's configuration: the target's URL, transport and host name, the profile's secrets and trust.

    With Kerberos the username is jitad's service principal (JITAD_KERBEROS_PRINCIPAL) and the
    server is named by ``hostname`` when given (a URL may name it by address), else by the URL's host.
    """
    transport = transport or "kerberos"  # a target saved without one: the model's default
    name = (profile or "default").lower().replace("_", "-")
    secrets = settings.JITAD_WINRM_PROFILES.get(name)
    if secrets is None:
        raise HostMisconfigured(f"no WinRM credential profile named {name!r}")
    return HostConfig(
        url=url,
        transport=transport,
        username=settings.JITAD_KERBEROS_PRINCIPAL if transport == "kerberos" else secrets.get("username", ""),
        password=secrets.get("password", ""),
        ca_bundle=secrets.get("ca_bundle", ""),
        cert_pem=secrets.get("cert_pem", ""),
        cert_key_pem=secrets.get("cert_key_pem", ""),
        allow_ntlm=bool(secrets.get("allow_ntlm")),
        kerberos_host=hostname.strip().rstrip(".") if transport == "kerberos" else "",
        message_encryption=settings.JITAD_WINRM_MESSAGE_ENCRYPTION,
        connect_timeout=settings.JITAD_WINRM_CONNECT_TIMEOUT,
        read_timeout=settings.JITAD_WINRM_READ_TIMEOUT,
        operation_timeout=settings.JITAD_WINRM_OPERATION_TIMEOUT,
        deadline=settings.JITAD_WINRM_DEADLINE,
    )
