"""Is jitad ready to do its job? The checks behind /readyz, each bounded in time.

``database`` and ``broker`` are this web process's own links (a page needs the first, every
grant's wake-up call the second); ``directory``, ``sweep``, ``deliveries`` and ``siem`` are
jitad's as a whole, the same from every web process. A DC and the broker are asked on the
network, side by side, within JITAD_READY_TIMEOUT, and their answers are reused for
JITAD_READY_CACHE_SECONDS (one probe at a time per process: concurrent requests wait for
it); the others are short reads by index, whose answers are reused for as long (the database's
own link is asked every time). Nothing here writes to the database.
"""
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Min
from django.utils import timezone

from jitad import broker, directory
from jitad.audit.models import AuditEvent
from jitad.audit.selectors import siem_destinations
from jitad.engine import selectors as engine
from jitad.notifications.models import Delivery

SWEEP_PULSE = "sweep"  # marked by the grant sweep at the end of every run (jitad.elevation)
CHECKS = ("database", "broker", "directory", "sweep", "deliveries", "siem")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _short(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first}"[:300]


# --- network probes, cached per process ---------------------------------------------------------------
class _Cached:
    """One probe's last answer, reused for JITAD_READY_CACHE_SECONDS; at most one probe runs at a time.

    ``names`` are the checks it answers: while an earlier probe has not come back, each is answered as failed.
    """

    def __init__(self, names: tuple[str, ...], probe):
        self.names = names
        self._probe = probe
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._answer = None

    def get(self, timeout: float):
        if not self._lock.acquire(timeout=timeout + 1):
            busy = [Check(n, False, "an earlier check has not come back") for n in self.names]
            return busy if len(self.names) > 1 else busy[0]
        try:
            if self._answer is None or time.monotonic() - self._at >= settings.JITAD_READY_CACHE_SECONDS:
                self._answer = self._probe(timeout)
                self._at = time.monotonic()
            return self._answer
        finally:
            self._lock.release()

    def forget(self) -> None:
        with self._lock:
            self._answer = None


def _broker(timeout: float) -> Check:
    why = broker.probe(deadline=timeout)
    return Check("broker", not why, why or "takes messages")


def _directory(timeout: float) -> Check:
    if not settings.JITAD_LDAP_URLS:
        return Check("directory", False, "no domain controller is configured (JITAD_LDAP_URLS)")
    results = directory.probe_each(deadline=timeout)
    up = [url for url, why in results.items() if not why]
    detail = "; ".join(f"{url}: {why or 'answers'}" for url, why in results.items())
    return Check("directory", bool(up), f"{len(up)} of {len(results)} answer: {detail}")


_broker_cached = _Cached(("broker",), _broker)
_directory_cached = _Cached(("directory",), _directory)


def _in_thread(cached: _Cached, timeout: float, name: str) -> tuple[threading.Thread, list]:
    out: list[Check] = []

    def run():
        try:
            out.append(cached.get(timeout))
        except Exception as e:  # noqa: BLE001 - a check reports, it never raises
            out.append(Check(name, False, _short(e)))

    t = threading.Thread(target=run, name=f"ready-{name}", daemon=True)
    t.start()
    return t, out


# --- reads of the database -------------------------------------------------------------------------------
def _database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as e:
        return Check("database", False, _short(e))
    return Check("database", True, f"answers ({connection.vendor})")


def _sweep(now) -> Check:
    at = engine.pulse_at(name=SWEEP_PULSE)
    limit = settings.JITAD_SWEEP_STALE_SECONDS
    if at is None:
        return Check("sweep", False, "no sweep has run to its end on this database: is a scheduler and an engine "
                                     "worker running?")
    age = (now - at).total_seconds()
    return Check("sweep", age <= limit, f"the last sweep ended {age:.1f} s ago (limit {limit:g} s)")


def _deliveries(now) -> Check:
    due = Delivery.objects.filter(state=Delivery.State.PENDING, next_attempt_at__lte=now)
    oldest = due.aggregate(oldest=Min("next_attempt_at"))["oldest"]
    limit = settings.JITAD_READY_DELIVERY_LAG_SECONDS
    if oldest is None:
        return Check("deliveries", True, "none waiting")
    age = (now - oldest).total_seconds()
    return Check("deliveries", age <= limit, f"the oldest due delivery has waited {age:.0f} s (limit {limit:g} s)")


def siem_oldest_unsent(last_seq: int, head_seq: int):
    """When the oldest event a destination has not been sent was recorded, or None when it has them all."""
    if last_seq >= head_seq:
        return None
    return AuditEvent.objects.filter(seq__gt=last_seq).order_by("seq").values_list("created_at", flat=True).first()


def _siem(now) -> Check:
    if not settings.JITAD_SIEM_DESTINATIONS:
        return Check("siem", True, "no SIEM destination is configured")
    limit = settings.JITAD_SIEM_ALERT_LAG_SECONDS
    late = []
    for d in siem_destinations():
        oldest = siem_oldest_unsent(d["last_seq"], d["head_seq"])
        if oldest is not None and (now - oldest).total_seconds() > limit:
            late.append(f"{d['name']} is {d['lag_events']} event(s) behind, the oldest "
                        f"{(now - oldest).total_seconds():.0f} s old")
    return Check("siem", not late, "; ".join(late) or f"every destination within {limit:g} s")


_tables_lock = threading.Lock()
_tables_cached: dict[tuple[str, ...], _Cached] = {}  # by the checks asked together


def _reads(names: set[str]) -> list[Check]:
    """The database's checks: its own link now, the rest's answers reused for JITAD_READY_CACHE_SECONDS.

    /readyz needs no login, so anyone who reaches it would otherwise choose how often jitad reads
    its tables; with the reuse, a process reads them at most once per period, whoever asks.
    """
    checks = [_database()]
    wanted = tuple(n for n in ("sweep", "deliveries", "siem") if n in names)
    if not wanted:
        return checks
    if not checks[0].ok:
        return checks + [Check(n, False, "not checked: the database does not answer") for n in wanted]
    with _tables_lock:
        cached = _tables_cached.setdefault(wanted, _Cached(wanted, lambda timeout: _tables(wanted)))
    return checks + cached.get(settings.JITAD_READY_TIMEOUT)


def _tables(wanted: tuple[str, ...]) -> list[Check]:
    """The sweep, delivery and SIEM checks, in one short read-only transaction PostgreSQL stops at the limit."""
    checks = []
    now = timezone.now()
    reads = {"sweep": _sweep, "deliveries": _deliveries, "siem": _siem}
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                ms = int(settings.JITAD_READY_TIMEOUT * 1000)
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL statement_timeout = {ms}")
            for name in wanted:
                checks.append(reads[name](now))
    except DatabaseError as e:
        done = {c.name for c in checks}
        checks += [Check(n, False, _short(e)) for n in wanted if n not in done]
    return checks


def readiness(names=CHECKS) -> list[Check]:
    """The checks named (all by default), in CHECKS order; never waits much longer than JITAD_READY_TIMEOUT."""
    names = set(names)
    timeout = settings.JITAD_READY_TIMEOUT
    threads = []
    if "broker" in names:
        threads.append(_in_thread(_broker_cached, timeout, "broker"))
    if "directory" in names:
        threads.append(_in_thread(_directory_cached, timeout, "directory"))
    checks = _reads(names) if names & {"database", "sweep", "deliveries", "siem"} else []
    end = time.monotonic() + timeout + 1
    for (t, out), name in zip(threads, [n for n in ("broker", "directory") if n in names]):
        t.join(max(0.0, end - time.monotonic()))
        checks.append(out[0] if out else Check(name, False, f"no answer within {timeout:g} s"))
    by_name = {c.name: c for c in checks}
    return [by_name[n] for n in CHECKS if n in names and n in by_name]


def readiness_forget() -> None:
    """Drop the cached answers (tests, and an operator's change of settings)."""
    _broker_cached.forget()
    _directory_cached.forget()
    with _tables_lock:
        _tables_cached.clear()
