"""Binding to a domain controller: TLS settings, trying each configured DC, and a per-thread session.

LDAPS (or StartTLS) with the certificate checked against the configured CA; simple binds
only over TLS. The first DC that answers wins; every one that failed is named.
"""
import dataclasses
import logging
import math
import ssl
import threading
import time
from contextlib import contextmanager

from ldap3 import DSA, SIMPLE, Connection, Server, Tls
from ldap3.core import exceptions as lx

from jitad import metrics

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


def _open(url: str, config: DirectoryConfig, tls: Tls, user: str, password: str) -> Connection:
    """Open a TLS connection to one DC and bind as ``user``; ldap3 errors propagate."""
    server = Server(url, tls=tls, connect_timeout=config.connect_timeout, get_info=DSA)
    conn = Connection(
        server,
        user=user,
        password=password,
        authentication=SIMPLE,
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
        conn.bind()
    except BaseException:
        conn.unbind()
        raise
    return conn


def bind_each(config: DirectoryConfig, user: str, password: str) -> tuple[Connection, str]:
    """Bind as ``user`` on the first DC that answers; DirectoryRejected if one refuses the bind.

    ldap3's ServerPool sleeps between rounds on its own clock; trying the URLs here keeps
    the deadline ours and names every DC that failed.
    """
    config.check()
    tls = _tls(config)
    failures = []
    for url in config.urls:
        started = time.monotonic()
        try:
            with metrics.timed(metrics.dc_call_seconds, metrics.dc_call_errors, call="bind", dc=url), \
                    translate(f"bind to {url}"):
                return _open(url, config, tls, user, password), url
        except DirectoryUnavailable as e:
            failures.append(f"{url}: {e} after {time.monotonic() - started:.1f}s")
    raise DirectoryUnavailable("no domain controller answered: " + "; ".join(failures))


def _bind_service(config: DirectoryConfig) -> tuple[Connection, str]:
    """Bind as jitad's service account to the first configured DC that answers."""
    try:
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
