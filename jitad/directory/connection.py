"""Binding to a domain controller: TLS settings, trying each configured DC, and a per-thread session.

LDAPS (or StartTLS) with the certificate checked against the configured CA; simple binds
only over TLS. jitad's own bind is a simple bind with its password, or (JITAD_LDAP_AUTH=kerberos)
a SASL GSSAPI bind with the keytab of its service principal (jitad/kerberos.py), inside the
same TLS and bound to it: the ticket carries the TLS channel's binding (tls-server-end-point of
the DC's certificate), which a DC that enforces channel binding checks. The first DC that
answers wins; every one that failed is named.
"""
import dataclasses
import ipaddress
import logging
import math
import ssl
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

from ldap3 import DSA, KERBEROS, SASL, SIMPLE, Connection, Server, Tls
from ldap3.core import exceptions as lx

from jitad import kerberos, metrics

from .client import Directory
from .config import DirectoryConfig
from .errors import DirectoryError, DirectoryMisconfigured, DirectoryRejected, DirectoryUnavailable, translate

log = logging.getLogger(__name__)


def _tls(config: DirectoryConfig) -> Tls:
    try:
        return Tls(
            validate=ssl.CERT_REQUIRED,
            version=ssl.PROTOCOL_TLS_CLIENT,
            ca_certs_file=config.ca_file,
            valid_names=list(config.tls_names) or None,
        )
    except lx.LDAPSSLConfigurationError as e:
        raise DirectoryMisconfigured(f"JITAD_LDAP_CA_FILE {config.ca_file!r} is unusable: {e}") from e


def kerberos_host(url: str, config: DirectoryConfig) -> str:
    """The DC's name in its service principal (ldap/<name>): the URL's host, or, where the URL gives an
    address, the first of JITAD_LDAP_TLS_NAMES (the name its certificate carries)."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return config.tls_names[0] if config.tls_names else host


def _open(url: str, config: DirectoryConfig, tls: Tls, user: str, password: str, *,
          sasl_kerberos: bool = False) -> Connection:
    """Open a TLS connection to one DC and bind as ``user`` (with ``sasl_kerberos``: as the principal
    ``user`` with its keytab, no password); ldap3 errors propagate."""
    server = Server(url, tls=tls, connect_timeout=config.connect_timeout, get_info=DSA)
    if sasl_kerberos:
        # ldap3 binds with the channel bindings of the TLS socket it has by then (LDAPS or StartTLS).
        auth = dict(authentication=SASL, sasl_mechanism=KERBEROS, sasl_credentials=(kerberos_host(url, config),))
    else:
        auth = dict(password=password, authentication=SIMPLE)
    conn = Connection(
        server,
        user=user,
        **auth,
        raise_exceptions=True,
        receive_timeout=max(1, math.ceil(config.receive_timeout)),  # ldap3 packs it as an integer
        auto_range=True,
        # Never follow a referral: ldap3 would re-send this bind (the service account's password)
        # to whatever host the referral names, over plain LDAP if it says ldap://. A search from
        # a domain root gets them on real AD (DomainDnsZones, ForestDnsZones); jitad reads only
        # the entries of the DC it bound to.
        auto_referrals=False,
        check_names=False,
        return_empty_attributes=False,
    )
    try:
        conn.open()
        if config.start_tls and not url.lower().startswith("ldaps://"):
            conn.start_tls()
        if sasl_kerberos:
            _bind_gssapi(conn, url, kerberos_host(url, config))
        else:
            conn.bind()
    except BaseException:
        conn.unbind()
        raise
    return conn


def _bind_gssapi(conn: Connection, url: str, host: str) -> None:
    """The SASL GSSAPI bind, with GSSAPI's own failures as the seam's errors (no KDC: transient).

    The service ticket is got first, on its own: when that fails inside ldap3's bind, ldap3 aborts
    the bind and raises the DC's answer to the abort, and GSSAPI's reason is lost. The bind then
    uses the ticket from the cache.
    """
    import gssapi.exceptions

    try:
        kerberos.get_ticket("ldap", host)
        conn.bind()
    except kerberos.KerberosNoTicket as e:
        if e.transient:
            raise DirectoryUnavailable(f"bind to {url}: Kerberos: {e}") from e
        raise DirectoryMisconfigured(f"bind to {url}: Kerberos: {e}") from e
    except gssapi.exceptions.GSSError as e:  # in the bind itself: the ticket ran out and no KDC answered, or a refusal
        error = DirectoryUnavailable if kerberos.gss_transient(e) else DirectoryMisconfigured
        raise error(f"bind to {url}: Kerberos: {' '.join(str(e).split())[:300]}") from e
    except lx.LDAPStrongerAuthRequiredResult as e:
        raise DirectoryMisconfigured(
            f"bind to {url}: the DC wants SASL signing or sealing on top of TLS ({e.message}); jitad's Kerberos bind "
            "relies on TLS for both. Samba: ldap server require strong auth = allow_sasl_over_tls; or bind with a "
            "password (ops/README.md, Kerberos)") from e


def open_service(url: str, config: DirectoryConfig, tls: Tls) -> Connection:
    """A connection to one DC bound as jitad's own account: its password, or its Kerberos keytab."""
    if config.auth == "kerberos":
        try:
            principal = kerberos.prepare()
        except kerberos.KerberosMisconfigured as e:
            raise DirectoryMisconfigured(str(e)) from e
        return _open(url, config, tls, principal, "", sasl_kerberos=True)
    return _open(url, config, tls, config.bind_dn, config.bind_password)


def bind_each(config: DirectoryConfig, user: str, password: str) -> tuple[Connection, str]:
    """Bind as ``user`` on the first DC that answers; DirectoryRejected if one refuses the bind.

    ldap3's ServerPool sleeps between rounds on its own clock; trying the URLs here keeps
    the deadline ours and names every DC that failed.
    """
    return _first_answering(config, lambda url, tls: _open(url, config, tls, user, password))


def _service_each(config: DirectoryConfig) -> tuple[Connection, str]:
    """bind_each for jitad's Kerberos bind."""
    return _first_answering(config, lambda url, tls: open_service(url, config, tls))


def _first_answering(config: DirectoryConfig, opener) -> tuple[Connection, str]:
    """``opener(url, tls)`` on each configured DC in turn: the first connection made, or DirectoryUnavailable naming
    every DC that failed (DirectoryRejected and other errors pass through at once)."""
    config.check()
    tls = _tls(config)
    failures = []
    for url in config.urls:
        started = time.monotonic()
        try:
            with metrics.timed(metrics.dc_call_seconds, metrics.dc_call_errors, call="bind", dc=url), \
                    translate(f"bind to {url}"):
                return opener(url, tls), url
        except DirectoryUnavailable as e:
            failures.append(f"{url}: {e} after {time.monotonic() - started:.1f}s")
    raise DirectoryUnavailable("no domain controller answered: " + "; ".join(failures))


def _bind_service(config: DirectoryConfig) -> tuple[Connection, str]:
    """Bind as jitad's service account to the first configured DC that answers."""
    try:
        if config.auth == "kerberos":
            return _service_each(config)
        return bind_each(config, config.bind_dn, config.bind_password)
    except DirectoryRejected as e:
        # The DC answered: bad bind credentials are ours to fix, not another DC's.
        raise DirectoryMisconfigured(str(e)) from e


def connect(config: DirectoryConfig | None = None) -> Directory:
    """Bind as jitad's service account to the first configured DC that answers."""
    config = config or DirectoryConfig.from_settings()
    conn, url = _bind_service(config)
    return Directory(conn, config, url, reopen=lambda: _bind_service(config))


_cached = threading.local()
_MAX_IDLE_SECONDS = 60.0


@contextmanager
def session(config: DirectoryConfig | None = None):
    """A bound Directory reused across calls in this thread (a worker process runs many tasks).

    A connection used less than ``config.session_check_seconds`` ago is reused as it is,
    marked ``unproven``: if it turns out dead, its first read binds afresh and reads again,
    and a change is only ever sent once something has answered on it (Directory._read,
    _write). One idle for longer is checked with a root DSE read first. One that idled more
    than 60 s, failed that check, or raised during use is dropped and the next call binds afresh.
    """
    config = config or DirectoryConfig.from_settings()
    d, used_at = getattr(_cached, "entry", (None, 0.0))
    idle = time.monotonic() - used_at
    if d is not None:
        recent = idle <= config.session_check_seconds
        if d.config != config or idle > _MAX_IDLE_SECONDS or (not recent and not d.alive()):
            d.close()
            d = None
        else:
            d.unproven = recent
    if d is None:
        d = connect(config)
    _cached.entry = (None, 0.0)
    try:
        yield d
    except BaseException:
        d.close()
        raise
    _cached.entry = (d, time.monotonic())


def session_warm(config: DirectoryConfig | None = None, *, budget: float = 1.0) -> bool:
    """Bind this thread's session now, before any task needs it (a worker's pool process at start).

    A bind is the costliest part of a first task (TLS handshake, bind, root DSE: tens of ms).
    Only the first configured DC is tried, with its timeouts capped at ``budget`` seconds so a
    process start is never held long; any failure is logged and the first task binds as usual.
    Returns True if a session is ready.
    """
    try:
        config = config or DirectoryConfig.from_settings()
        quick = dataclasses.replace(config, urls=config.urls[:1], connect_timeout=min(config.connect_timeout, budget),
                                    receive_timeout=min(config.receive_timeout, budget))
        conn, url = _bind_service(quick)
    except DirectoryError as e:
        log.info("directory session not bound ahead of the first task: %s", e)
        return False
    # From here on the configured receive timeout applies, as on a connection session() opened.
    conn.receive_timeout = max(1, math.ceil(config.receive_timeout))
    if conn.socket is not None:
        conn.socket.settimeout(conn.receive_timeout)
    d, _ = getattr(_cached, "entry", (None, 0.0))
    if d is not None:
        d.close()
    # Kept with the real settings (timeouts, every DC for a later bind), as if bound by session().
    _cached.entry = (Directory(conn, config, url, reopen=lambda: _bind_service(config)), time.monotonic())
    return True
