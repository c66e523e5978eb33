"""jitad's Prometheus metrics: what each process counts as it works, and figures read from the database at scrape time.

Bottom layer, like the seams: the directory and host seams, the engine, notifications and
accounts count here (an increment, never I/O). What the database already knows (grants by
state, backlogs, when the sweep last ran) is not counted at all: the apps that own those
rows register a *figures* function (:func:`figures_register`, from their ``AppConfig.ready``)
that reads them when ``/metrics`` is scraped, so every web process answers the same.

The process model (ops/README.md, "Health and metrics"). gunicorn runs several web
processes and Celery's workers are processes of their own, each with its own counters.
With ``PROMETHEUS_MULTIPROC_DIR`` set (the same folder for every jitad process on a
machine, emptied at boot: a tmpfs such as ``/run/jitad/metrics``), each process writes its
counters to a file there and ``/metrics`` on that machine's web adds up every process's
files, the workers' included, and the files of processes that ended (a counter never goes
back when a worker is restarted). Without it (development, tests) each process counts in
memory and ``/metrics`` shows the serving process's counters only.
"""
import os

_folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if _folder:
    try:
        os.makedirs(_folder, exist_ok=True)  # before prometheus_client writes there (its first metric)
    except OSError as e:
        raise RuntimeError(f"PROMETHEUS_MULTIPROC_DIR={_folder} cannot be created: {e.strerror or e}; "
                           "create it writable for jitad's user, or unset the variable") from e

import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Callable, Iterable  # noqa: E402

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter,  # noqa: E402
                               Histogram, generate_latest)
from prometheus_client.core import Metric  # noqa: E402

MULTIPROCESS = bool(_folder)
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Seconds; the revocation target is p99 <= 250 ms (docs/benchmarks.md), an SLA alert fires at JITAD_REVOCATION_SLA_SECONDS.
LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# --- the directory seam (jitad/directory) ---------------------------------------------------------
dc_call_seconds = Histogram("jitad_dc_call_seconds", "Duration of LDAP calls to a domain controller, by kind of call",
                            ["call", "dc"], buckets=CALL_BUCKETS)
dc_call_errors = Counter("jitad_dc_call_errors", "LDAP calls that failed, by kind of call and the seam's error",
                         ["call", "dc", "error"])
# --- the host seam (jitad/hosts) ---------------------------------------------------------------------
winrm_call_seconds = Histogram("jitad_winrm_call_seconds", "Duration of WinRM script runs on a server, by script",
                               ["script"], buckets=CALL_BUCKETS)
winrm_call_errors = Counter("jitad_winrm_call_errors", "WinRM script runs that failed, by script and the seam's error",
                            ["script", "error"])
# --- the engine and the grants --------------------------------------------------------------------
revocation_lateness = Histogram("jitad_revocation_lateness_seconds",
                                "Seconds from a grant's end (or the request to end it) to its revocation recorded",
                                buckets=LATENESS_BUCKETS)
work_failures = Counter("jitad_work_failures",
                        "Failed attempts at claimed work, by kind of row, its state before, and whether it is retried "
                        "(outcome retry) or out of attempts or permanent (outcome exhausted)",
                        ["kind", "state", "outcome"])
# --- notifications -----------------------------------------------------------------------------------
alerts = Counter("jitad_alerts", "Alerts recorded for the security channel, by event and severity", ["event", "severity"])
# --- accounts --------------------------------------------------------------------------------------
logins = Counter("jitad_logins", "Successful logins (password step), by method: directory or local", ["method"])
login_failures = Counter("jitad_login_failures", "Refused logins, by reason", ["reason"])
mfa_failures = Counter("jitad_mfa_failures", "Refused MFA codes, by kind of device and why", ["device", "reason"])


def observe(histogram: Histogram, seconds: float, **labels) -> None:
    """Record ``seconds`` in ``histogram``; never raises (a metric must not fail the work it measures)."""
    try:
        (histogram.labels(**labels) if labels else histogram).observe(max(0.0, seconds))
    except Exception:  # noqa: BLE001 - a full disk under PROMETHEUS_MULTIPROC_DIR, say
        pass


def count(counter: Counter, amount: float = 1, **labels) -> None:
    """Add ``amount`` to ``counter``; never raises."""
    try:
        (counter.labels(**labels) if labels else counter).inc(amount)
    except Exception:  # noqa: BLE001
        pass


@contextmanager
def timed(histogram: Histogram, errors: Counter, **labels):
    """Time the block into ``histogram``; an exception leaving it is counted in ``errors`` by its class name."""
    started = time.perf_counter()
    try:
        yield
    except Exception as e:
        count(errors, error=type(e).__name__, **labels)
        raise
    finally:
        observe(histogram, time.perf_counter() - started, **labels)


# --- figures read at scrape time ---------------------------------------------------------------------
Figures = Callable[[], Iterable[Metric]]
_figures: dict[str, Figures] = {}


def figures_register(name: str, figures: Figures) -> None:
    """Have ``figures()`` (metric families, e.g. ``GaugeMetricFamily``) read at every scrape, under ``name``.

    Called from an app's ``AppConfig.ready``; registering the same name again replaces it.
    """
    _figures[name] = figures


class _Figures:
    """A collector over the registered figures; one that fails is reported as such, never fails the scrape."""

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        failed = GaugeMetricFamily("jitad_metrics_figures_failed",
                                   "1 when a group of figures could not be read at this scrape", labels=["figures"])
        for name, figures in sorted(_figures.items()):
            try:
                yield from list(figures())
                failed.add_metric([name], 0)
            except Exception:  # noqa: BLE001 - the rest of the scrape still answers
                import logging

                logging.getLogger(__name__).exception("metrics: the %s figures could not be read", name)
                failed.add_metric([name], 1)
        yield failed


def render() -> bytes:
    """The exposition text: every process's counters (this machine's, in multiprocess mode) and the figures."""
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    figures = CollectorRegistry(auto_describe=False)
    figures.register(_Figures())
    return generate_latest(registry) + generate_latest(figures)
