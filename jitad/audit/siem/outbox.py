"""The SIEM outbox as claimed work: send the audit chain to each destination in seq order, at least once.

The audit table is the outbox; each destination has a cursor (``SiemCursor``) with the
last seq it accepted. ``siem_send`` (a wake-up after a commit, or beat's sweep) claims
each due cursor nobody holds, sends the events after it in bounded batches outside any
transaction, and advances the cursor only after the destination accepted a batch, while
still holding the claim. A failure is a failed attempt (``claims.attempt_failed``) with
backoff and no limit: an outage is waited out, however long. A refused certificate or
token is alerted at once; a destination that falls behind by JITAD_SIEM_ALERT_LAG_SECONDS
is alerted, and resolved once it has caught up. Nothing here ever blocks a grant or a
revocation: they only append to the chain and queue one wake-up per transaction.
"""
import logging
import time

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from jitad.engine import claims, retry
from jitad.notifications.services import condition_raise, condition_resolve

from ..models import AuditCheckpoint, AuditEvent, SiemCursor
from ..selectors import events_after
from . import formats, transport

log = logging.getLogger(__name__)
NEVER = 10**9  # attempts: a SIEM outage is retried for as long as it lasts
BUDGET_SECONDS = 60.0  # one run's sending time; the next wake-up or sweep goes on


def backoff_seconds(attempts: int, *, failed: bool = False) -> float:
    """The engine's backoff on the SIEM's own base and cap."""
    return retry.backoff_seconds(attempts, failed=failed, base=settings.JITAD_SIEM_RETRY_BASE_SECONDS,
                                 cap=settings.JITAD_SIEM_RETRY_MAX_SECONDS)


def cursors_ensure() -> dict[str, SiemCursor]:
    """A cursor per configured destination; a new one starts at the first kept event."""
    names = list(settings.JITAD_SIEM_DESTINATIONS)
    have = {c.name: c for c in SiemCursor.objects.filter(name__in=names)}
    missing = [n for n in names if n not in have]
    if missing:
        checkpoint = AuditCheckpoint.objects.filter(pk=1).first()
        start = checkpoint.seq if checkpoint else 0
        SiemCursor.objects.bulk_create([SiemCursor(name=n, last_seq=start) for n in missing], ignore_conflicts=True)
        have = {c.name: c for c in SiemCursor.objects.filter(name__in=names)}
    return have


def send_batch(dest: dict, events: list[AuditEvent]) -> None:
    """Send ``events`` to one destination (raises transport.SiemError)."""
    timeout = settings.JITAD_SIEM_TIMEOUT
    hostname = settings.JITAD_SIEM_HOSTNAME
    if dest["transport"] == "syslog":
        frames = [formats.syslog_frame(ev, fmt=dest["format"], hostname=hostname) for ev in events]
        transport.syslog_send(dest["url"], frames, ca_file=dest["ca_file"], timeout=timeout)
    else:
        body = formats.hec_batch(events, fmt=dest["format"], hostname=hostname)
        transport.https_post(dest["url"], body, token=dest["token"], ca_file=dest["ca_file"], timeout=timeout)


def siem_send(*, until: float | None = None) -> int:
    """Send every due destination what it has not accepted yet; returns events sent."""
    if not settings.JITAD_SIEM_DESTINATIONS:
        return 0
    cursors_ensure()
    until = until or time.monotonic() + BUDGET_SECONDS
    now = timezone.now()
    due = SiemCursor.objects.filter(name__in=list(settings.JITAD_SIEM_DESTINATIONS)).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    sent = 0
    while True:
        token, rows = claims.claim(due, limit=len(settings.JITAD_SIEM_DESTINATIONS))
        with claims.held(SiemCursor, token):
            run = sum(_drain(cursor, token, until) for cursor in rows)
        claims.release(SiemCursor, [c.pk for c in rows], token)
        sent += run
        # Events appended while this run held the cursors found them taken and left them to
        # it: look once more, until a run sends nothing.
        if not run or time.monotonic() >= until:
            return sent


def _drain(cursor: SiemCursor, token, until: float) -> int:
    """Send ``cursor``'s destination batches until it has caught up, failed, or the run is out of time."""
    dest = settings.JITAD_SIEM_DESTINATIONS[cursor.name]
    last, sent, failed_before = cursor.last_seq, 0, bool(cursor.attempts)
    while time.monotonic() < until:
        events = events_after(last, limit=settings.JITAD_SIEM_BATCH)
        if not events:
            break
        try:
            send_batch(dest, events)
        except transport.SiemError as e:
            _failed(cursor, token, str(e), rejected=isinstance(e, transport.SiemRejected))
            return sent
        last = events[-1].seq
        moved = SiemCursor.objects.filter(pk=cursor.pk, claim_token=token).update(
            last_seq=last, last_sent_at=timezone.now(), attempts=0, next_attempt_at=None, last_error="")
        if not moved:  # the claim lapsed and someone else holds it: they go on from the cursor
            log.warning("SIEM %s: claim lost after sending up to seq %s", cursor.name, last)
            return sent
        sent += len(events)
    if failed_before and sent:
        log.info("SIEM %s: sending again, now at seq %s", cursor.name, last)
        condition_resolve(key=f"siem.rejected:{cursor.name}", event="siem.rejected",
                          subject=f"SIEM destination {cursor.name} refuses audit events",
                          body=f"{cursor.name} accepts audit events again (at seq {last}).")
    return sent


def _failed(cursor: SiemCursor, token, error: str, *, rejected: bool) -> None:
    """A failed send: retried after the backoff for ever; a refusal (certificate, token) is alerted at once."""
    def report(failures):
        for f in failures:
            delay = max(0.0, (f.row.next_attempt_at - timezone.now()).total_seconds())
            log.warning("SIEM %s: send failed (attempt %d), retrying in %.0f s: %s",
                        f.row.name, f.row.attempts, delay, error)
            if rejected:
                condition_raise(key=f"siem.rejected:{f.row.name}", event="siem.rejected",
                                subject=f"SIEM destination {f.row.name} refuses audit events",
                                body=f"{error}\nEvents wait in the outbox from seq {f.row.last_seq + 1} and are "
                                     "sent once this is fixed; jitad keeps retrying.")

    claims.attempt_failed(SiemCursor.objects.filter(pk=cursor.pk), [cursor.pk], token, error=error,
                          transient=True, max_attempts=NEVER, report=report, state_field=None,
                          backoff=backoff_seconds)


def siem_lag_check(*, now=None) -> list[str]:
    """Alert for each destination whose oldest unsent event is older than the limit; resolve the caught-up ones.

    Returns the names of the destinations that are behind.
    """
    now = now or timezone.now()
    limit = settings.JITAD_SIEM_ALERT_LAG_SECONDS
    behind = []
    for name, cursor in sorted(cursors_ensure().items()):
        key, subject = f"siem.lag:{name}", f"SIEM destination {name} is behind"
        oldest = AuditEvent.objects.filter(seq__gt=cursor.last_seq).order_by("seq").values_list("at", flat=True).first()
        if oldest is not None and (now - oldest).total_seconds() > limit:
            behind.append(name)
            pending = AuditEvent.objects.filter(seq__gt=cursor.last_seq).count()
            condition_raise(key=key, event="siem.lag", subject=subject,
                            body=f"{pending} audit event(s) not yet sent to {name}, the oldest from "
                                 f"{oldest:%Y-%m-%d %H:%M:%S} UTC (seq {cursor.last_seq + 1}). "
                                 f"Last error: {cursor.last_error or 'none'}")
        elif oldest is None:
            condition_resolve(key=key, event="siem.lag", subject=subject,
                              body=f"{name} has caught up (seq {cursor.last_seq}).")
    return behind
