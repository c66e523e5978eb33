"""jitad's Kerberos identity for its seams: which krb5.conf, keytab and credential cache the library uses.

MIT Kerberos reads its configuration from the process environment, so this module sets it
once per process, before the first ticket is asked for:

* ``KRB5_CONFIG``: JITAD_KERBEROS_CONFIG, or a krb5.conf written under the var dir from the
  realm and KDCs (no reverse DNS, no host name canonicalisation: a server is named as
  configured, never as a DNS answer says);
* ``KRB5_CLIENT_KTNAME``: the keytab of jitad's service principal. The library gets a ticket
  with it whenever the cache has none or the one it has is about to end, so no process ever
  runs kinit and nothing needs renewing by hand (without a keytab, the cache is another
  program's to keep filled);
* ``KRB5CCNAME``: the credential cache those tickets go to.

The directory seam (SASL GSSAPI binds) and the host seam (WinRM) call :func:`prepare`, then
:func:`get_ticket`, which waits at most JITAD_KERBEROS_TIMEOUT for the KDCs: MIT Kerberos 1.20
(Debian 12) has no krb5.conf setting that bounds its own wait (``request_timeout`` came in a
later release), and for a KDC that takes the connection but never answers it waits about 27 s
per KDC for each request, twice over. Its failures are told apart by MIT's error codes, never by
their words: only "no KDC could be reached" and "the KDC cannot serve now" are worth trying again.
"""
import os
import threading
from concurrent.futures import Future
from pathlib import Path

from django.conf import settings


class KerberosMisconfigured(Exception):
    """Kerberos is asked for and jitad's settings for it are missing or unusable."""


class KerberosNoTicket(Exception):
    """No ticket for a service: ``transient`` when no KDC answered, else refused (no such SPN, bad keys...)."""

    def __init__(self, reason: str, *, transient: bool):
        super().__init__(reason)
        self.transient = transient


_lock = threading.Lock()
_prepared: tuple | None = None


def enabled() -> bool:
    return bool(settings.JITAD_KERBEROS_REALM)


def principal() -> str:
    """jitad's service principal, name@REALM."""
    return settings.JITAD_KERBEROS_PRINCIPAL


def krb5_conf(realm: str, kdcs: list[str]) -> str:
    """A krb5.conf for ``realm`` with its KDCs by name or address (none: found in DNS)."""
    realm_block = "".join(f"        kdc = {kdc}\n" for kdc in kdcs)
    return (
        "# Written by jitad from JITAD_KERBEROS_REALM and JITAD_KERBEROS_KDCS; changes here are overwritten.\n"
        "[libdefaults]\n"
        f"    default_realm = {realm}\n"
        f"    dns_lookup_kdc = {'false' if kdcs else 'true'}\n"
        "    dns_lookup_realm = false\n"
        "    rdns = false\n"
        "    dns_canonicalize_hostname = false\n"
        "    forwardable = false\n"
        # TCP first (UDP only when no KDC takes a connection): AD tickets with a PAC rarely fit a datagram.
        "    udp_preference_limit = 1\n"
        "[realms]\n"
        f"    {realm} = {{\n{realm_block}    }}\n"
    )


_TRUE = {"y", "yes", "true", "t", "1", "on"}  # how MIT's profile library reads a boolean


def config_warnings(path: str) -> list[str]:
    """What in a site's own krb5.conf (JITAD_KERBEROS_CONFIG) lets DNS choose the server whose ticket jitad asks for.

    Read simply: the first value of each relation at the top of [libdefaults]; ``include`` and
    ``includedir`` files are not followed (said so when present). MIT's defaults apply to what is unset.
    """
    values: dict[str, str] = {}
    section, depth, includes = "", 0, False
    for raw in Path(path).read_text(errors="replace").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith(("include ", "includedir ", "module ")):
            includes = True
            continue
        if depth == 0 and line.startswith("[") and "]" in line:
            section = line[1:line.index("]")].strip().lower()
            continue
        if line.endswith("{"):
            depth += 1
            continue
        if line.startswith("}"):
            depth = max(0, depth - 1)
            continue
        if section == "libdefaults" and depth == 0 and "=" in line:
            key, _, value = line.partition("=")
            values.setdefault(key.strip().rstrip("*").strip().lower(), value.strip().lower())
    found = []
    canonicalize = values.get("dns_canonicalize_hostname", "true (the default)")
    if canonicalize.split(" ")[0] in _TRUE or canonicalize == "fallback":
        found.append(f"dns_canonicalize_hostname = {canonicalize}: a DNS answer (a CNAME) chooses the server jitad asks "
                     "a ticket for; set it to false")
    rdns = values.get("rdns", "true (the default)")
    if rdns.split(" ")[0] in _TRUE:
        found.append(f"rdns = {rdns}: a reverse DNS answer chooses the server jitad asks a ticket for; set it to false")
    if includes and found:
        found.append("it includes other files, which this check does not read")
    return found


def prepare() -> str:
    """Point this process's Kerberos library at jitad's configuration, keytab and cache; return the principal.

    Idempotent and cheap after the first call; raises KerberosMisconfigured when Kerberos is off.
    """
    global _prepared
    if not enabled():
        raise KerberosMisconfigured("Kerberos is not configured: set JITAD_KERBEROS_REALM, JITAD_KERBEROS_PRINCIPAL "
                                    "and JITAD_KERBEROS_KEYTAB (ops/README.md, Kerberos)")
    wanted = (settings.JITAD_KERBEROS_REALM, tuple(settings.JITAD_KERBEROS_KDCS), settings.JITAD_KERBEROS_CONFIG,
              settings.JITAD_KERBEROS_KEYTAB, settings.JITAD_KERBEROS_CCACHE, str(settings.VAR_DIR))
    with _lock:
        if _prepared != wanted:
            config = settings.JITAD_KERBEROS_CONFIG
            if not config:
                path = Path(settings.VAR_DIR) / "krb5.conf"
                text = krb5_conf(settings.JITAD_KERBEROS_REALM, list(settings.JITAD_KERBEROS_KDCS))
                if not path.is_file() or path.read_text() != text:
                    tmp = path.with_name(f"krb5.conf.{os.getpid()}.tmp")
                    tmp.write_text(text)
                    os.replace(tmp, path)  # another process may read it at any moment: never half written
                config = str(path)
            keytab = settings.JITAD_KERBEROS_KEYTAB
            if keytab and not os.path.isfile(keytab):
                raise KerberosMisconfigured(f"JITAD_KERBEROS_KEYTAB={keytab} does not exist")
            os.environ["KRB5_CONFIG"] = config
            if keytab:
                os.environ["KRB5_CLIENT_KTNAME"] = keytab
            else:
                os.environ.pop("KRB5_CLIENT_KTNAME", None)
            os.environ["KRB5CCNAME"] = settings.JITAD_KERBEROS_CCACHE
            _prepared = wanted
    return settings.JITAD_KERBEROS_PRINCIPAL


# MIT Kerberos error codes (krb5.h, com_err table "krb5") that mean no KDC gave an answer, or the one that
# answered cannot serve now: worth trying again. Every other failure (no such principal, no KDC configured for
# the realm, clock skew, unsupported keys...) is a refusal to fix, even where its text names the KDC.
KRB5_KDC_UNREACH = -1765328228           # Cannot contact any KDC for realm
KRB5_REALM_CANT_RESOLVE = -1765328164    # Cannot resolve network address for KDC in requested realm
KRB5KDC_ERR_SVC_UNAVAILABLE = -1765328355  # A service is not available (the KDC is busy or starting)
TRANSIENT_CODES = frozenset({KRB5_KDC_UNREACH, KRB5_REALM_CANT_RESOLVE, KRB5KDC_ERR_SVC_UNAVAILABLE})


def transient_code(minor: int | None) -> bool:
    """Whether GSSAPI's minor status (a Kerberos error code, signed or as the unsigned OM_uint32) says no KDC answered."""
    if minor is None:
        return False
    minor = int(minor)
    if minor >= 1 << 31:
        minor -= 1 << 32
    return minor in TRANSIENT_CODES


def gss_transient(e: BaseException) -> bool:
    """Whether a python-gssapi GSSError means no KDC answered (by its minor code)."""
    return transient_code(getattr(e, "min_code", None))


_inflight: dict[tuple, Future] = {}


def get_ticket(service: str, host: str, *, timeout: float | None = None) -> None:
    """Get jitad's ticket for ``service/host`` now, into the cache, or raise KerberosNoTicket with GSSAPI's reason.

    The libraries that then log on with it (pywinrm, ldap3) report a failure to get one as a
    refused logon or the server's answer to an aborted bind, and GSSAPI's reason is lost. A
    ticket already in the cache costs no network.

    Waits at most ``timeout`` (JITAD_KERBEROS_TIMEOUT) for the KDCs: the exchange runs in a thread
    of its own (the library holds no Python lock while it waits), and one that outlives the
    wait is left to finish on its own; a later call for the same service waits for that one
    rather than starting another, so a silent KDC never piles up threads.
    """
    import gssapi
    import gssapi.exceptions

    timeout = settings.JITAD_KERBEROS_TIMEOUT if timeout is None else timeout
    key = (principal(), service, host)
    with _lock:
        future = _inflight.get(key)
        if future is None or future.done():
            future = _inflight[key] = Future()
            threading.Thread(target=_exchange, args=(future, key), name=f"jitad-kerberos-{service}",
                             daemon=True).start()
    try:
        error = future.result(timeout=timeout)
    except TimeoutError:
        raise KerberosNoTicket(f"no KDC answered within {timeout:g} s (JITAD_KERBEROS_TIMEOUT) for a ticket to "
                               f"{service}/{host}", transient=True) from None
    if error is None:
        return
    if not isinstance(error, gssapi.exceptions.GSSError):
        raise error
    reason = " ".join(str(error).split())[:300]
    if "not found in Kerberos database" in reason:
        reason += f" (is {service}/{host} registered on the account of that server?)"
    raise KerberosNoTicket(reason, transient=gss_transient(error)) from error


def _exchange(future: Future, key: tuple) -> None:
    """Ask the KDC for jitad's ticket to ``key``'s service: the result is the error, or None."""
    import gssapi

    name, service, host = key
    try:
        creds = gssapi.Credentials(name=gssapi.Name(name, gssapi.NameType.kerberos_principal), usage="initiate")
        gssapi.SecurityContext(name=gssapi.Name(f"{service}@{host}", gssapi.NameType.hostbased_service),
                               mech=gssapi.MechType.kerberos, creds=creds, usage="initiate").step()
    except Exception as e:  # handed to the caller, which raises it
        future.set_result(e)
    else:
        future.set_result(None)
