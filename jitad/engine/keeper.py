"""Keep the claims this process is working on, so a short lease only lapses when the holder is gone.

A claim's lease (``lease_until``) says how long other processes wait before they take the
work over. Short leases make a dead worker's work move on within seconds, but work that
takes longer than the lease (a slow DC, a server's WinRM deadline) must not be taken over
while its holder is alive. So the holder renews: ``held(model, token)`` registers the claim
with a thread of this process that pushes ``lease_until`` forward every third of a lease.
When the process dies, renewals stop and the lease lapses on its own.

Renewal never shortens a lease someone set longer, and stops after JITAD_CLAIM_MAX_HOLD_SECONDS
(a hung call must not hold its work for ever; every network call has its own timeout anyway).
It never waits for a row lock either: a row locked at that moment is renewed at the next round.
"""
import logging
import os
import threading
import time
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import DateTimeField, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

log = logging.getLogger(__name__)

_lock = threading.Lock()
_held: dict[tuple, float] = {}  # (model, token) -> monotonic time it was registered
_thread: threading.Thread | None = None
_owner_pid = 0


def lease_seconds() -> float:
    return settings.JITAD_LEASE_SECONDS


def lease_until(now=None):
    """When a claim taken now lapses if nobody renews it."""
    return (now or timezone.now()) + timedelta(seconds=lease_seconds())


@contextmanager
def held(model, token):
    """Renew ``model`` rows claimed with ``token`` while the block runs."""
    key = (model, str(token))
    _ensure_thread()
    with _lock:
        _held[key] = time.monotonic()
    try:
        yield
    finally:
        with _lock:
            _held.pop(key, None)


def renew_now() -> int:
    """Push every held claim's lease forward once; returns rows renewed (the thread calls this)."""
    with _lock:
        now_m = time.monotonic()
        limit = settings.JITAD_CLAIM_MAX_HOLD_SECONDS
        keys = [k for k, since in _held.items() if now_m - since < limit]
        stale = [k for k, since in _held.items() if now_m - since >= limit]
    for model, token in stale:
        log.error("%s claim %s held for over %ss: no longer renewed", model.__name__, token, limit)
        with _lock:
            _held.pop((model, token), None)
    by_model: dict = {}
    for model, token in keys:
        by_model.setdefault(model, []).append(token)
    count = 0
    until = Value(lease_until(), output_field=DateTimeField())
    for model, tokens in by_model.items():
        # Never waits: a row another transaction holds locked (the worker marking it done, a sender taking it
        # over) is skipped this round. An UPDATE would queue behind that lock while holding the rows it had
        # locked already, which the holder may want next (a deadlock PostgreSQL breaks by failing one side).
        with transaction.atomic():
            free = list(model.objects.filter(claim_token__in=tokens).order_by()
                        .select_for_update(skip_locked=True).values_list("pk", flat=True))
            if free:
                count += model.objects.filter(pk__in=free).update(
                    lease_until=Greatest(Coalesce("lease_until", until), until)
                )
    return count


def _loop() -> None:
    while True:
        time.sleep(max(0.2, lease_seconds() / 3))
        with _lock:
            idle = not _held
        if idle:
            connection.close()  # hold no database connection while there is nothing to renew
            continue
        try:
            close_old_connections()
            renew_now()
        except DatabaseError as e:  # the database is away: the leases may lapse, which is the safe side
            log.warning("could not renew claims: %s", e)
            connection.close()
        except Exception:  # anything else: logged, and the next round tries again (the thread must not die)
            log.exception("could not renew claims")
            connection.close()


def _ensure_thread() -> None:
    """One renewal thread per process (a forked pool child starts its own)."""
    global _thread, _owner_pid
    with _lock:
        if _thread is not None and _owner_pid == os.getpid() and _thread.is_alive():
            return
        _owner_pid = os.getpid()
        _thread = threading.Thread(target=_loop, name="jitad-claim-keeper", daemon=True)
        _thread.start()


def _after_fork() -> None:
    """A forked child has no renewal thread and holds none of its parent's claims."""
    global _lock, _held, _thread
    _lock, _held, _thread = threading.Lock(), {}, None


os.register_at_fork(after_in_child=_after_fork)
