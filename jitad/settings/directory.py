"""Active Directory over LDAPS: the DCs, the bind, TLS trust, timeouts, the JIT OU, member TTLs."""
from .env import PRODUCTION, env, refuse
from .kerberos import JITAD_KERBEROS_REALM

# URLs are tried in order (first that answers wins, the next on failure).
JITAD_LDAP_URLS = env.list("JITAD_LDAP_URLS", default=[])
JITAD_LDAP_CA_FILE = env.str("JITAD_LDAP_CA_FILE", default="")
# Names the DC certificate may carry when it differs from the host in the URL.
JITAD_LDAP_TLS_NAMES = env.list("JITAD_LDAP_TLS_NAMES", default=[])
JITAD_LDAP_START_TLS = env.bool("JITAD_LDAP_START_TLS", default=False)
# How jitad binds: "password" (a simple bind as JITAD_LDAP_BIND_DN over TLS) or "kerberos" (SASL GSSAPI as
# JITAD_KERBEROS_PRINCIPAL with its keytab, over TLS with channel binding; no password in the environment).
JITAD_LDAP_AUTH = env.str("JITAD_LDAP_AUTH", default="password").strip().lower()
if JITAD_LDAP_AUTH not in ("password", "kerberos"):
    refuse(f"JITAD_LDAP_AUTH={JITAD_LDAP_AUTH!r}: one of password, kerberos")
    JITAD_LDAP_AUTH = "password"
if JITAD_LDAP_AUTH == "kerberos" and not JITAD_KERBEROS_REALM:
    refuse("JITAD_LDAP_AUTH=kerberos needs JITAD_KERBEROS_REALM, _PRINCIPAL and _KEYTAB")
JITAD_LDAP_BIND_DN = env.str("JITAD_LDAP_BIND_DN", default="")
JITAD_LDAP_BIND_PASSWORD = env.str("JITAD_LDAP_BIND_PASSWORD", default="")
JITAD_LDAP_BASE_DN = env.str("JITAD_LDAP_BASE_DN", default="")
# The OU (or OUs, separated by ";") holding the JIT groups: jitad manages no group outside it.
JITAD_LDAP_JIT_OU = env.str("JITAD_LDAP_JIT_OU", default="")
JITAD_LDAP_CONNECT_TIMEOUT = env.float("JITAD_LDAP_CONNECT_TIMEOUT", default=3.0)
JITAD_LDAP_RECEIVE_TIMEOUT = env.float("JITAD_LDAP_RECEIVE_TIMEOUT", default=10.0)
# A worker's LDAPS session used less than this many seconds ago is reused without a root DSE
# read first; a connection found dead on its first read is bound again and the read repeated.
JITAD_LDAP_SESSION_CHECK_SECONDS = env.float("JITAD_LDAP_SESSION_CHECK_SECONDS", default=10.0)
# "auto" detects the Windows Server 2016 PAM optional feature; "off" never writes TTLs.
JITAD_LDAP_MEMBER_TTL = env.str("JITAD_LDAP_MEMBER_TTL", default="auto")
if PRODUCTION:
    _needed = [("JITAD_LDAP_URLS", JITAD_LDAP_URLS), ("JITAD_LDAP_CA_FILE", JITAD_LDAP_CA_FILE)]
    if JITAD_LDAP_AUTH != "kerberos":  # a Kerberos bind has no DN or password
        _needed += [("JITAD_LDAP_BIND_DN", JITAD_LDAP_BIND_DN), ("JITAD_LDAP_BIND_PASSWORD", JITAD_LDAP_BIND_PASSWORD)]
    for _name, _value in _needed:
        if not _value:
            refuse(f"{_name} must be set in production"
                   + (" (or JITAD_LDAP_AUTH=kerberos)" if _name in ("JITAD_LDAP_BIND_DN", "JITAD_LDAP_BIND_PASSWORD")
                      else ""))
if PRODUCTION and not any(part.strip() for part in JITAD_LDAP_JIT_OU.split(";")):
    # Without it jitad manages no group: every grant would fail, and a policy file could not be applied.
    refuse(
        "JITAD_LDAP_JIT_OU must be set in production: the OU holding jitad's JIT groups, e.g. OU=JIT,DC=corp,DC=example"
    )
