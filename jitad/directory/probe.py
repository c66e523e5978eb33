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

from .config import DirectoryConfig
from .connection import _open, _tls
from .errors import DirectoryError, DirectoryMisconfigured, translate

_lock = threading.Lock()
_running: dict[str, threading.Thread] = {}


def _probe_one(url: str, config: DirectoryConfig, tls, results: dict) -> None:
    started = time.monotonic()
    try:
        with translate(f"probe {url}"):
            conn = _open(url, config, tls, config.bind_dn, config.bind_password)
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
