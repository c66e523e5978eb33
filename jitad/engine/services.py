"""Writes of the engine's own rows: leases, heartbeats, pulses. Each is one short statement."""
import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from .models import Heartbeat, Lease, Pulse

log = logging.getLogger(__name__)


def lease_take(*, name: str, holder: str, seconds: float) -> bool:
    """Take or renew the lease ``name`` for ``holder``; True if ``holder`` now holds it.

    One conditional UPDATE decides: it matches only a lease that is ours, lapsed or never
    held, so two processes racing for a lapsed lease cannot both win (PostgreSQL re-checks
    the condition on the locked row; SQLite runs one writer at a time).
    """
    now = timezone.now()
    until = now + timedelta(seconds=seconds)
    mine = Lease.objects.filter(name=name, holder=holder, expires_at__gte=now).update(expires_at=until)
    if mine:
        return True
    free = Q(expires_at__isnull=True) | Q(expires_at__lt=now) | Q(holder=holder)
    if Lease.objects.filter(free, name=name).update(holder=holder, acquired_at=now, expires_at=until):
        return True
    try:
        with transaction.atomic():
            Lease.objects.create(name=name, holder=holder, acquired_at=now, expires_at=until)
    except IntegrityError:
        return False  # another process created it first, and holds it
    return True


def lease_release(*, name: str, holder: str) -> None:
    """Give a lease up now (a clean shutdown), so another process takes over without waiting."""
    Lease.objects.filter(name=name, holder=holder).update(expires_at=timezone.now() - timedelta(seconds=1))


def heartbeat_beat(*, node: str, role: str, hostname: str, pid: int, queues: str = "") -> None:
    """Say that ``node`` is alive now (a restarted process takes its row over)."""
    now = timezone.now()
    updated = Heartbeat.objects.filter(node=node, pid=pid, hostname=hostname, stopped_at__isnull=True).update(
        seen_at=now, queues=queues)
    if updated:
        return
    Heartbeat.objects.update_or_create(
        node=node,
        defaults={"role": role, "hostname": hostname, "pid": pid, "started_at": now, "seen_at": now, "stopped_at": None,
                  "queues": queues},
    )


def heartbeat_stop(*, node: str, pid: int) -> None:
    """A clean shutdown: this process is gone on purpose, not dead."""
    Heartbeat.objects.filter(node=node, pid=pid).update(stopped_at=timezone.now())


def heartbeats_forget(*, older_than: timedelta) -> int:
    """Drop processes not heard of for a long time (a machine taken out of service)."""
    return Heartbeat.objects.filter(seen_at__lt=timezone.now() - older_than).delete()[0]


# A pulse the grant engine marks as each revocation message starts and ends: while one is recent, work
# that can wait (people's notice e-mails, jitad.notifications) waits, so a mass expiry's removals do not
# share the database and CPUs with its own notices.
REVOKING = "revoking"


def pulse_mark(*, name: str) -> None:
    """Record that ``name`` (the sweep) ran to its end now."""
    now = timezone.now()
    if not Pulse.objects.filter(name=name).update(at=now):
        try:
            with transaction.atomic():
                Pulse.objects.create(name=name, at=now)
        except IntegrityError:
            Pulse.objects.filter(name=name).update(at=now)
