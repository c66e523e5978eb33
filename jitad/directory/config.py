"""Directory settings, read from Django settings at the moment a connection is made."""
from dataclasses import dataclass, field

from django.conf import settings

from .errors import DirectoryMisconfigured


@dataclass(frozen=True)
class DirectoryConfig:
    """Where the DCs are, how to trust them, and who jitad binds as."""

    urls: tuple[str, ...]
    ca_file: str
    bind_dn: str
    bind_password: str = field(repr=False)
    base_dn: str
    jit_ou: str = ""
    tls_names: tuple[str, ...] = ()
    start_tls: bool = False
    connect_timeout: float = 3.0
    receive_timeout: float = 10.0
    member_ttl: str = "auto"
    # A session reused within this many seconds skips its root DSE check (connection.session).
    session_check_seconds: float = 10.0
    # jitad's own bind: "password" (bind_dn, bind_password) or "kerberos" (jitad/kerberos.py's principal).
    auth: str = "password"

    @classmethod
    def from_settings(cls) -> "DirectoryConfig":
        return cls(
            urls=tuple(settings.JITAD_LDAP_URLS),
            ca_file=settings.JITAD_LDAP_CA_FILE,
            bind_dn=settings.JITAD_LDAP_BIND_DN,
            bind_password=settings.JITAD_LDAP_BIND_PASSWORD,
            base_dn=settings.JITAD_LDAP_BASE_DN,
            jit_ou=settings.JITAD_LDAP_JIT_OU,
            tls_names=tuple(settings.JITAD_LDAP_TLS_NAMES),
            start_tls=settings.JITAD_LDAP_START_TLS,
            connect_timeout=settings.JITAD_LDAP_CONNECT_TIMEOUT,
            receive_timeout=settings.JITAD_LDAP_RECEIVE_TIMEOUT,
            member_ttl=settings.JITAD_LDAP_MEMBER_TTL,
            session_check_seconds=settings.JITAD_LDAP_SESSION_CHECK_SECONDS,
            auth=settings.JITAD_LDAP_AUTH,
        )

    def check(self) -> None:
        """Refuse settings that would talk to a DC without validated TLS."""
        if not self.urls:
            raise DirectoryMisconfigured("JITAD_LDAP_URLS is empty: no domain controller to talk to")
        if not self.ca_file:
            raise DirectoryMisconfigured("JITAD_LDAP_CA_FILE is empty: DC certificates cannot be validated")
        if self.auth not in ("password", "kerberos"):
            raise DirectoryMisconfigured(f"JITAD_LDAP_AUTH={self.auth!r}: one of password, kerberos")
        if self.auth == "password" and (not self.bind_dn or not self.bind_password):
            raise DirectoryMisconfigured("JITAD_LDAP_BIND_DN and JITAD_LDAP_BIND_PASSWORD must be set "
                                         "(or JITAD_LDAP_AUTH=kerberos)")
        if not self.base_dn:
            raise DirectoryMisconfigured("JITAD_LDAP_BASE_DN must be set")
        for url in self.urls:
            scheme = url.split("://", 1)[0].lower()
            if scheme not in ("ldap", "ldaps"):
                raise DirectoryMisconfigured(f"unsupported LDAP URL scheme in {url!r}")
            if scheme == "ldap" and not self.start_tls:
                raise DirectoryMisconfigured(f"{url!r} is plaintext LDAP: use ldaps:// or JITAD_LDAP_START_TLS=true")
