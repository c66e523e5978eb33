"""Settings for the test process: jitad's own, with the tests' var dir and short engine timings.

The same timings go into the real worker's environment (tests/conftest.py), so both
sides agree. They shorten waits; they do not fake anything.
"""
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ENGINE_ENV = {
    "JITAD_SWEEP_INTERVAL": "0.5",
    "JITAD_RECONCILE_INTERVAL": "3600",
    "JITAD_PENDING_CHECK_INTERVAL": "3600",
    # The group watch removes out-of-band members within a second: off for the session's worker, so
    # tests that put members in by hand see the reconcile they run; the watch's own tests start a worker with it on.
    "JITAD_GROUP_WATCH_INTERVAL": "0",
    "JITAD_LEASE_SECONDS": "4",
    "JITAD_RETRY_MAX_ATTEMPTS": "3",
    "JITAD_RETRY_BASE_SECONDS": "0.3",
    "JITAD_RETRY_MAX_SECONDS": "1.5",
    "JITAD_LDAP_CONNECT_TIMEOUT": "2",
    "JITAD_LDAP_RECEIVE_TIMEOUT": "5",
    "JITAD_DELIVERY_MAX_ATTEMPTS": "3",
    "JITAD_DELIVERY_RETRY_BASE_SECONDS": "0.5",
    "JITAD_DELIVERY_RETRY_MAX_SECONDS": "2",
    "JITAD_DELIVERY_TIMEOUT": "3",
    "JITAD_DELIVERY_CHECK_INTERVAL": "1",
    "JITAD_EXPIRY_CHECK_INTERVAL": "3600",
    # The worker never syncs people from AD on its own: tests call the sync and assert on it.
    "JITAD_DIRECTORY_SYNC_INTERVAL": "0",
    # WinRM against the test host: short timeouts so hung and dead hosts fail in seconds,
    # a re-check window of 12 s for unverified grants, and scans only when a test asks.
    "JITAD_WINRM_CONNECT_TIMEOUT": "1",
    "JITAD_WINRM_READ_TIMEOUT": "3",
    "JITAD_WINRM_OPERATION_TIMEOUT": "2",
    "JITAD_WINRM_DEADLINE": "5",
    "JITAD_HOST_VERIFY_WINDOW_MINUTES": "0.2",
    "JITAD_HOST_SCAN_INTERVAL": "0",
    # Break-glass: windows ending and rotations retried within a second; seal checks only when a test asks.
    "JITAD_BREAKGLASS_SWEEP_INTERVAL": "0.5",
    "JITAD_BREAKGLASS_SEAL_CHECK_INTERVAL": "0",
    # Redundancy and the watchdog, in seconds rather than tens of seconds: a dead scheduler
    # is replaced within 3 s, a silent process is dead after 5 s, the watchdog looks every 1 s.
    "JITAD_SCHEDULER_LEASE_SECONDS": "3",
    "JITAD_HEARTBEAT_SECONDS": "0.5",
    "JITAD_PROCESS_SILENT_SECONDS": "5",
    "JITAD_WATCH_INTERVAL": "1",
    "JITAD_SWEEP_STALE_SECONDS": "5",
    "JITAD_DC_PROBE_TIMEOUT": "2",
    "JITAD_BROKER_PROBE_TIMEOUT": "1",
    "JITAD_REVOCATION_SLA_SECONDS": "10",
    # Session evidence: tests drive the sweep themselves (a beat sweep would add calls to every test
    # host), reads every second, 3 s after a grant's end, 5 events per call, 40 kept per grant.
    "JITAD_EVIDENCE_SWEEP_INTERVAL": "0",
    "JITAD_EVIDENCE_INTERVAL_SECONDS": "1",
    "JITAD_EVIDENCE_AFTER_MINUTES": "0.05",
    "JITAD_EVIDENCE_MAX_EVENTS_PER_CALL": "5",
    "JITAD_EVIDENCE_MAX_EVENTS_PER_GRANT": "40",
}

# A var dir of the tests' own (SQLite file, broker folder), so a running `make demo`
# and a test run never share state.
os.environ.setdefault("JITAD_VAR_DIR", str(Path(__file__).resolve().parents[1] / "var" / "test"))


def _own_machine_per_process() -> None:
    """In a parallel run (pytest-xdist: `make test` runs two processes) each process gets what
    would collide: its own var dir (SQLite file, broker folder), its own Redis database, its own
    loopback address for its Samba DC (whose ports are fixed). pytest-django gives each its own
    test database. Done once, in the test process: the processes a test starts inherit the result
    (or are given their own values by the test), and import these settings again untouched."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker or os.environ.get("JITAD_TEST_PROCESS") == worker:
        return
    os.environ["JITAD_TEST_PROCESS"] = worker
    n = int(worker.removeprefix("gw"))
    os.environ["JITAD_VAR_DIR"] = str(Path(os.environ["JITAD_VAR_DIR"]) / worker)
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if broker.startswith(("redis://", "rediss://")):
        url = urlsplit(broker)
        db = int(url.path.strip("/") or 0) + 1 + n
        os.environ["CELERY_BROKER_URL"] = urlunsplit(url._replace(path=f"/{db}"))
    os.environ.setdefault("JITAD_TEST_DC_HOST", f"127.0.0.{2 + n}")


_own_machine_per_process()
for _key, _value in ENGINE_ENV.items():
    os.environ.setdefault(_key, _value)

from jitad.settings import *  # noqa: E402,F403

# Hypothesis (and schemathesis, built on it) keeps its example database and caches under the
# tests' var dir, never in a .hypothesis folder in the checkout.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(VAR_DIR / "hypothesis"))  # noqa: F405
