"""Kerberos for jitad's own identity: realm, KDCs, the keytab of its service principal, the credential cache.

Off until JITAD_KERBEROS_REALM is set. With it, WinRM targets whose transport is "kerberos"
and the directory bind (JITAD_LDAP_AUTH=kerberos) log on as JITAD_KERBEROS_PRINCIPAL with the
keys in JITAD_KERBEROS_KEYTAB: no password in the environment. Without a keytab, an explicit
JITAD_KERBEROS_CCACHE that something else keeps filled (k5start, gssproxy) will do. jitad writes its own krb5.conf
(jitad/kerberos.py) unless JITAD_KERBEROS_CONFIG names one; it never reads /etc/krb5.conf.
Every value is checked here, at start, with the variable named in the problem.
"""
import os
import re
import stat
from pathlib import Path

from .env import VAR_DIR, env, refuse

JITAD_KERBEROS_REALM = env.str("JITAD_KERBEROS_REALM", default="").strip()
# KDCs as host or host:port, tried in order; empty: found in DNS (_kerberos._tcp SRV records of the realm).
JITAD_KERBEROS_KDCS = [k.strip() for k in env.list("JITAD_KERBEROS_KDCS", default=[]) if k.strip()]
JITAD_KERBEROS_PRINCIPAL = env.str("JITAD_KERBEROS_PRINCIPAL", default="").strip()
JITAD_KERBEROS_KEYTAB = env.str("JITAD_KERBEROS_KEYTAB", default="").strip()
# Where tickets got with the keytab are kept (shared by jitad's processes on one machine).
JITAD_KERBEROS_CCACHE = env.str("JITAD_KERBEROS_CCACHE", default="").strip() or f"FILE:{VAR_DIR / 'krb5cc_jitad'}"
# A krb5.conf of the site's own; empty: jitad writes one from the realm and KDCs above (VAR_DIR/krb5.conf).
JITAD_KERBEROS_CONFIG = env.str("JITAD_KERBEROS_CONFIG", default="").strip()
# Seconds jitad waits for the KDCs to give it a ticket before it counts them as down (a transient failure,
# tried again later). MIT Kerberos 1.20 has no krb5.conf setting for it; its own wait for a silent KDC is ~1 min.
JITAD_KERBEROS_TIMEOUT = env.float("JITAD_KERBEROS_TIMEOUT", default=10.0)

_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(:\d{1,5})?$")


def _check() -> None:
    """Refuse a half-configured or unsafe Kerberos setup at start, naming the variable to fix."""
    named = {name: os.environ.get(name, "") for name in (
        "JITAD_KERBEROS_KDCS", "JITAD_KERBEROS_PRINCIPAL", "JITAD_KERBEROS_KEYTAB", "JITAD_KERBEROS_CONFIG")}
    if not 0.5 <= JITAD_KERBEROS_TIMEOUT <= 300:
        return refuse(f"JITAD_KERBEROS_TIMEOUT={JITAD_KERBEROS_TIMEOUT:g}: seconds between 0.5 and 300")
    if not JITAD_KERBEROS_REALM:
        given = [name for name, value in named.items() if value.strip()]
        if given:
            return refuse(f"{', '.join(given)} set but JITAD_KERBEROS_REALM is empty: name the realm "
                          "(e.g. CORP.EXAMPLE) or unset them")
        return
    if not re.fullmatch(r"[A-Z0-9][A-Z0-9.-]*", JITAD_KERBEROS_REALM):
        return refuse(f"JITAD_KERBEROS_REALM={JITAD_KERBEROS_REALM!r}: an Active Directory realm is the "
                      "DNS domain in capitals, e.g. CORP.EXAMPLE")
    for kdc in JITAD_KERBEROS_KDCS:
        if not _HOST_PORT.match(kdc) or (":" in kdc and not 0 < int(kdc.rsplit(":", 1)[1]) < 65536):
            return refuse(f"JITAD_KERBEROS_KDCS: {kdc!r} is not host or host:port")
    principal = JITAD_KERBEROS_PRINCIPAL
    if not principal:
        return refuse("JITAD_KERBEROS_PRINCIPAL must be set with JITAD_KERBEROS_REALM: jitad's service "
                      "account, e.g. svc-jitad@CORP.EXAMPLE")
    if principal.count("@") != 1 or not principal.split("@")[0] or re.search(r"[\s\\]", principal):
        return refuse(f"JITAD_KERBEROS_PRINCIPAL={principal!r}: write it as name@REALM "
                      "(svc-jitad@CORP.EXAMPLE), not DOMAIN\\name")
    if not re.fullmatch(r"(FILE|DIR|KEYRING|MEMORY|KCM):.+", JITAD_KERBEROS_CCACHE):
        return refuse(f"JITAD_KERBEROS_CCACHE={JITAD_KERBEROS_CCACHE!r}: a credential cache name with its "
                      "type, e.g. FILE:/var/lib/jitad/krb5cc_jitad")
    if JITAD_KERBEROS_CONFIG and not Path(JITAD_KERBEROS_CONFIG).is_file():
        return refuse(f"JITAD_KERBEROS_CONFIG={JITAD_KERBEROS_CONFIG} does not exist")
    if not JITAD_KERBEROS_KEYTAB:
        if os.environ.get("JITAD_KERBEROS_CCACHE", "").strip():
            return  # tickets from a cache another program keeps (k5start, gssproxy); nothing to renew them here
        return refuse("JITAD_KERBEROS_KEYTAB must be set with JITAD_KERBEROS_REALM: the keytab holding "
                      f"{principal}'s keys (ops/README.md, Kerberos); or name a credential cache "
                      "another program keeps filled in JITAD_KERBEROS_CCACHE")
    keytab = Path(JITAD_KERBEROS_KEYTAB)
    try:
        mode = keytab.stat().st_mode
    except OSError as e:
        return refuse(f"JITAD_KERBEROS_KEYTAB={keytab}: {e.strerror}")
    if not stat.S_ISREG(mode):
        return refuse(f"JITAD_KERBEROS_KEYTAB={keytab} is not a file")
    if mode & 0o007:
        return refuse(f"JITAD_KERBEROS_KEYTAB={keytab} can be read by anyone on this machine "
                      f"(mode {stat.S_IMODE(mode):o}): it is {principal}'s password; chmod 600 (or 640, "
                      "group jitad)")
    if not os.access(keytab, os.R_OK):
        return refuse(f"JITAD_KERBEROS_KEYTAB={keytab} cannot be read by this process's user")


_check()
