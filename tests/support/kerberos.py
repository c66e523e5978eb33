"""Kerberos in the test DC's realm: service accounts with SPNs, keytabs exported from the DC, jitad's settings.

The realm is the test DC's (JITAD.TEST); its KDC listens on the DC's loopback address, port 88,
and is named by address (the DC runs without DNS). Keytabs come from ``samba-tool domain
exportkeytab`` on the DC's own database, exported by account name (that carries the AES keys;
an export by SPN carries RC4 only), with the accounts set to AES tickets. Files are mode 600.
"""
import secrets
import socket
import ssl
import subprocess
from pathlib import Path

from .samba import REALM, SambaDC, clean_env

AES_ONLY = 0x18  # msDS-SupportedEncryptionTypes: AES128 and AES256 (no RC4, no DES)


class TestRealm:
    """Accounts and keytabs in ``dc``'s realm, kept under ``root``."""

    def __init__(self, dc: SambaDC, root: Path):
        self.dc = dc
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.realm = REALM
        self.kdc = f"{dc.host}:88"
        self.ccache = self.root / "krb5cc_jitad"
        # Tickets of an earlier run's DC (another krbtgt key) would be sent to this one and fail.
        self.ccache.unlink(missing_ok=True)

    def _tool(self, *args: str) -> str:
        out = subprocess.run(["samba-tool", *args, "-s", str(self.dc.smb_conf)], capture_output=True, text=True,
                             timeout=120, env=clean_env())
        if out.returncode != 0:
            raise RuntimeError(f"samba-tool {' '.join(args[:2])} failed: {out.stdout[-500:]} {out.stderr[-1000:]}")
        return out.stdout

    def add_spn(self, spn: str, account: str) -> None:
        """Register ``spn`` on ``account`` (sAMAccountName), unless it already is."""
        if spn.lower() not in self._tool("spn", "list", account).lower():
            self._tool("spn", "add", spn, account)

    def service_account(self, name: str, spns: tuple[str, ...] = ()) -> Path:
        """A user account ``name`` (random password, never written), with ``spns``, AES tickets, and its keytab."""
        self._tool("user", "create", name, "Kt-" + secrets.token_urlsafe(18), "--description=jitad test service")
        self._tool("user", "setexpiry", name, "--noexpiry")
        for spn in spns:
            self.add_spn(spn, name)
        self._set_aes_only(name)
        keytab = self.root / f"{name}.keytab"
        keytab.unlink(missing_ok=True)
        self._tool("domain", "exportkeytab", str(keytab), f"--principal={name}")
        if not keytab.is_file():
            raise RuntimeError(f"samba-tool exported no keys for {name}")
        keytab.chmod(0o600)
        return keytab

    def _set_aes_only(self, name: str) -> None:
        from ldap3 import MODIFY_REPLACE, Connection, Server, Tls

        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=self.dc.ca_file, valid_names=[self.dc.tls_name])
        with Connection(Server(self.dc.ldaps_url, tls=tls, connect_timeout=5), self.dc.admin_dn,
                        self.dc.admin_password, auto_bind=True, raise_exceptions=True) as c:
            dn = f"CN={name},CN=Users,{self.dc.base_dn}"
            c.modify(dn, {"msDS-SupportedEncryptionTypes": [(MODIFY_REPLACE, [str(AES_ONLY)])]})

    def settings_env(self, principal: str, keytab: Path) -> dict[str, str]:
        """The JITAD_KERBEROS_* variables for jitad logging on as ``principal`` with ``keytab``."""
        return {
            "JITAD_KERBEROS_REALM": self.realm,
            "JITAD_KERBEROS_KDCS": self.kdc,
            "JITAD_KERBEROS_PRINCIPAL": principal,
            "JITAD_KERBEROS_KEYTAB": str(keytab),
            "JITAD_KERBEROS_CCACHE": f"FILE:{self.ccache}",
        }


def offline_keytab(path: Path, *principals: str) -> Path:
    """A keytab (ktutil, mode 600) with AES keys for ``principals`` from a password no KDC knows: enough for MIT
    Kerberos to ask a KDC, which is all a test of a KDC that is down or missing needs."""
    lines = "".join(f"addent -password -p {p} -k 1 -e aes256-cts-hmac-sha1-96\nKt-Unused-1\n" for p in principals)
    subprocess.run(["ktutil"], input=lines + f"wkt {path}\nquit\n", text=True, capture_output=True, check=True,
                   timeout=30)
    path.chmod(0o600)
    return path


def closed_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (so UDP to it is refused as well)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
