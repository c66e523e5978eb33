"""Ask each configured DC, on a connection of its own, whether it answers: bind, then a root DSE read.

The watchdog calls this every few seconds, so a DC that stops answering is an alert of its
own (not only a slow revocation), and its return is noticed at once. A frozen DC (a hung
process, a black-holed network) may hold a socket long after the probe's deadline: the
probe stops waiting then and calls the DC down, and a DC whose previous probe is still
hanging is not probed again until that one ends, so probes never pile up.
"""
import threading
import time

from ldap3 import BASE

from jitad import metrics

from .client import Directory
from .config import DirectoryConfig
from .connection import _tls, open_service
from .errors import DirectoryError, DirectoryMisconfigured, DirectoryNotManaged, translate

_lock = threading.Lock()
_running: dict[str, threading.Thread] = {}


def _probe_one(url: str, config: DirectoryConfig, tls, results: dict) -> None:
    started = time.monotonic()
    try:
        with metrics.timed(metrics.dc_call_seconds, metrics.dc_call_errors, call="probe", dc=url), \
                translate(f"probe {url}"):
            conn = open_service(url, config, tls)
            try:
                conn.search("", "(objectClass=*)", BASE, attributes=["currentTime"])
            finally:
                conn.unbind()
        results[url] = None
    except DirectoryError as e:
        results[url] = f"{e} after {time.monotonic() - started:.1f}s"
    except Exception as e:  # noqa: BLE001 - a probe reports, it never raises
        results[url] = f"{type(e).__name__}: {e}"
    finally:
        with _lock:
            if _running.get(url) is threading.current_thread():
                del _running[url]


def probe_each(config: DirectoryConfig | None = None, *, deadline: float) -> dict[str, str | None]:
    """{url: None if that DC answered within ``deadline`` seconds, else why not}, probed in parallel."""
    config = config or DirectoryConfig.from_settings()
    try:
        config.check()
        tls = _tls(config)
    except DirectoryMisconfigured as e:
        return {url: f"misconfigured: {e}" for url in config.urls} or {"(none)": f"misconfigured: {e}"}
    results: dict[str, str | None] = {}
    started: list[tuple[str, threading.Thread]] = []
    for url in config.urls:
        with _lock:
            previous = _running.get(url)
            if previous is not None and previous.is_alive():
                results[url] = "the previous probe has not come back yet"
                continue
            t = threading.Thread(target=_probe_one, args=(url, config, tls, results), name=f"dc-probe {url}", daemon=True)
            _running[url] = t
        t.start()
        started.append((url, t))
    end = time.monotonic() + deadline
    for url, t in started:
        t.join(max(0.0, end - time.monotonic()))
        if t.is_alive():
            results[url] = f"no answer within {deadline:g}s"
    return {url: results.get(url, "no answer") for url in config.urls}


def ephemeral_state_each(dn: str, config: DirectoryConfig | None = None) -> dict[str, str]:
    """{url: "gone" | "disabled" | "enabled" | "unreachable: why"} for the ephemeral account ``dn`` on each DC.

    Each configured DC is asked on a connection of its own, so a disable or a delete is known
    to have reached every DC (replication) before jitad calls an ephemeral account ended.
    Refused (DirectoryNotManaged) for a DN that is not an ephemeral account under a JIT OU.
    """
    config = config or DirectoryConfig.from_settings()
    config.check()
    tls = _tls(config)
    states: dict[str, str] = {}
    for url in config.urls:
        try:
            with translate(f"read {dn} on {url}"):
                conn = open_service(url, config, tls)
            d = Directory(conn, config, url)
            try:
                account = d.ephemeral_read(dn)
            finally:
                d.close()
        except DirectoryNotManaged:
            raise
        except DirectoryError as e:
            states[url] = f"unreachable: {e}"
            continue
        states[url] = "gone" if account is None else ("disabled" if account.disabled else "enabled")
    return states
