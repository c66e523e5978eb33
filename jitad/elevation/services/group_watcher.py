"""The group watch: read the DC's change feed and check, at once, the managed groups whose members changed.

The periodic reconcile finds an out-of-band member within JITAD_RECONCILE_INTERVAL; the
watch finds one within about JITAD_GROUP_WATCH_INTERVAL. Each run asks the DC which groups
under the JIT OU changed since the cookie it keeps for that DC (``DirectoryCookie``) and
runs the reconciler's own per-group check (``reconcile_changed``: same removal, brake,
audit and alert) on those that are managed. A DC with no cookie, one that refuses it, or
one that was not the DC answering the previous run (a failover) is read from the start:
every managed group is checked once, as in a full reconcile. The
cookie moves on only once the groups it reported are checked, so nothing is lost to a run
that fails half-way; the periodic reconcile stays the safety net.
"""
import logging
import os
import socket
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jitad import directory
from jitad.engine.services import lease_release, lease_take, pulse_mark
from jitad.notifications.models import Notification
from jitad.notifications.services import condition_raise, condition_resolve

from ..models import DirectoryCookie
from ..selectors import backing
from .reconciler import reconcile_changed

log = logging.getLogger(__name__)

WATCH_LEASE = "group-watch"
WATCHED = "group-watch"  # a pulse: a run read the change feed and checked what it reported (or had nothing to watch)


def _lease_seconds() -> float:
    """How long a run holds the watch: five intervals, at least a minute.

    A read from the start (a first run, a refused cookie) pages through every group of the
    domain and may take tens of seconds; a shorter lease would let the next tick start the
    same full read beside it, every second. A run that died keeps the next one out for at
    most this long, meanwhile the periodic reconcile (JITAD_RECONCILE_INTERVAL) still runs.
    """
    return max(60.0, 5 * settings.JITAD_GROUP_WATCH_INTERVAL)


def group_watch_once() -> dict | None:
    """Run :func:`group_watch` unless another process is running it; None when it was skipped.

    Single-flight through the engine's lease ``group-watch``, as the sweep is: two runs with
    the same cookie would check the same groups twice and could save their cookies out of order.
    """
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not lease_take(name=WATCH_LEASE, holder=holder, seconds=_lease_seconds()):
        log.debug("group watch skipped: another process is running it")
        return None
    try:
        return group_watch(holder=holder)
    finally:
        lease_release(name=WATCH_LEASE, holder=holder)


def group_watch(*, holder: str = "") -> dict:
    """One read of the change feed and the checks it calls for; counts of what it did.

    ``changed``: managed groups the DC reported changed (all of them after a start over),
    ``removed``: members removed, ``restarted``: the feed was read from the start, ``checked``:
    False when the checks could not all be done (a reconcile running, a DC that stopped
    answering), so the cookie was kept for the next run. No DC answering is logged only: the
    periodic reconcile and the watchdog raise that condition. A DC that refuses the read
    itself raises the warning condition ``reconcile.watch_cannot_run``, resolved by the first
    run that reads the feed.
    """
    watching = bool(holder)  # run by group_watch_once, holding the watch's lease (renewed after the read)
    holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    counts = {"changed": 0, "removed": 0, "restarted": False, "checked": True}
    if not backing.managed_groups():
        pulse_mark(name=WATCHED)
        return counts  # nothing to watch: no DC is asked
    try:
        with directory.session() as d:
            dc = d.dc
            kept = DirectoryCookie.objects.filter(dc=dc[:512]).first()
            # Each DC goes on from its own cookie, whichever DC answered the runs in between (worker
            # processes keep their session to the DC they bound to): a change replicated into a DC gets
            # a USN of that DC's own, after its cookie, so the DC reports it whoever made it and when.
            usable = kept is not None
            changes = d.groups_changed(bytes(kept.cookie) if usable else None)
            counts["restarted"] = changes.restarted
            if changes.restarted:
                why = "it refused its cookie" if usable else "no cookie of this DC"
                log.warning("group watch: reading %s from the start (%s); every managed group is checked once", dc, why)
                changed = None
            else:
                changed = changes.groups
            if changed == ():
                result = {}
            else:
                if watching and not lease_take(name=WATCH_LEASE, holder=holder, seconds=_lease_seconds()):
                    log.warning("group watch: another run took the watch over during the read; leaving the checks to it")
                    counts["checked"] = False
                    return counts
                result = reconcile_changed(d, changed, holder=holder, lease_seconds=_lease_seconds())
            if result is None:
                counts["checked"] = False
                return counts
            counts["changed"] = len(result)
            counts["removed"] = sum(len(v) for v in result.values())
            url = d.url
    except directory.DirectoryError as e:
        counts["checked"] = False
        if e.transient:  # no DC answers: the periodic reconcile and the watchdog say so, once
            log.info("group watch: %s", e)
            return counts
        log.warning("group watch cannot read the change feed: %s", e)
        with transaction.atomic():
            condition_raise(
                key=CANNOT_WATCH, event=CANNOT_WATCH, severity=Notification.Severity.WARNING, subject=_SUBJECT,
                body=(f"{type(e).__name__}: {e}\n"
                      "The DC refuses the DirSync read the group watch makes every JITAD_GROUP_WATCH_INTERVAL "
                      "(docs/reconciler.md, \"The group watch\"): an out-of-band member is found only by the "
                      "periodic reconcile, every JITAD_RECONCILE_INTERVAL, until this is fixed."),
            )
        return counts
    _cookie_save(dc=dc, url=url, cookie=changes.cookie, restarted=changes.restarted, kept=kept)
    pulse_mark(name=WATCHED)  # the watchdog alerts when this stops moving (services.watch)
    condition_resolve(key=CANNOT_WATCH, event=f"{CANNOT_WATCH}.resolved", subject=_SUBJECT,
                      body="The group watch reads the DC's change feed again.")
    return counts


CANNOT_WATCH = "reconcile.watch_cannot_run"
_SUBJECT = "The group watch cannot read the DC's change feed: out-of-band admins wait for the periodic reconcile"


def _cookie_save(*, dc: str, url: str, cookie: bytes, restarted: bool, kept: DirectoryCookie | None) -> None:
    """Keep ``cookie`` as ``dc``'s; nothing is written when it did not change."""
    now = timezone.now()
    if kept is not None and bytes(kept.cookie) == cookie and not restarted:
        if not kept.current:  # another DC answered the runs before: only the flag moves
            with transaction.atomic():
                DirectoryCookie.objects.exclude(dc=dc[:512]).update(current=False)
                DirectoryCookie.objects.filter(dc=dc[:512]).update(current=True)
        return
    fields = {"cookie": cookie, "url": url[:512], "read_at": now, "current": True}
    with transaction.atomic():
        DirectoryCookie.objects.exclude(dc=dc[:512]).update(current=False)
        if restarted or kept is None:
            fields["started_at"] = now
        DirectoryCookie.objects.update_or_create(dc=dc[:512], defaults=fields)
