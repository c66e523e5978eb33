"""Send one delivery from the worker, as claimed work (jitad.engine): take the claim, send outside any transaction, record.

The database drives it, as for grants: a pending delivery is due at ``next_attempt_at``
and is sent by a message carrying its claim token. The attempt takes the claim
(``claims.take``: a duplicate message, or one whose claim was taken over, finds nothing),
marks ``attempt_started_at`` and holds the lease while it sends (``claims.held``). A
failure goes through ``claims.attempt_failed`` with the delivery's own backoff and limit
(JITAD_DELIVERY_RETRY_BASE_SECONDS / _MAX_SECONDS, JITAD_DELIVERY_MAX_ATTEMPTS); a retry
is claimed for a message that waits until it is due. ``deliveries_resend`` (beat) counts
an attempt whose lease lapsed mid-send (its worker died) as one that never finished, and
sends again the deliveries whose message was lost or never reached the broker.

Rows a claim names are read and written by key and claim token, not also by ``state =
'pending'``: every change of state clears the claim, so a row that carries one is pending.
Pending rows are few at rest, so PostgreSQL's statistics say there are none; in a burst it
chose the state index for such a statement and read every pending row (a 100,000-notice
wave: 40-80 ms a statement, one per e-mail).

Many e-mails at once (a batch's chunks, a person's notices joined) are ``email_batch``'s;
notice e-mails that wait while revocations run are ``waiting``'s. Both build on the claim,
the failure routine and the re-queueing here.
"""
import logging
import time
import traceback
import uuid
from collections import defaultdict
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from jitad.engine import claims, retry

from ..models import Delivery
from .channels import SendFailed, send_apprise, send_email, url_for
from .compose import attempt_seconds, deliveries_enqueue_on_commit, message_lease
from .destinations import SECURITY, scrub

log = logging.getLogger(__name__)
DeliveryState = Delivery.State
ERROR_MAX = 1000
NEVER_FINISHED = "never finished (worker stopped?)"

__all__ = ["attempt_seconds", "backoff_seconds", "deliveries_resend", "deliveries_retry", "deliveries_send_here",
           "delivery_send"]


def backoff_seconds(attempts: int, *, failed: bool = False) -> float:
    """The engine's backoff (jitad.engine.retry) on the delivery's own base and cap."""
    return retry.backoff_seconds(attempts, failed=failed, base=settings.JITAD_DELIVERY_RETRY_BASE_SECONDS,
                                 cap=settings.JITAD_DELIVERY_RETRY_MAX_SECONDS)


def _startable(now):
    """Pending deliveries that are due, with attempts left, and no attempt under way.

    One of them may be claimed for a message still waiting in the queue; a process that
    sends it itself (a direct call, the watchdog while the broker is down) takes the
    claim over, and that message then finds nothing to do.
    """
    return Delivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now,
                                   attempts__lt=settings.JITAD_DELIVERY_MAX_ATTEMPTS, attempt_started_at__isnull=True)


# -- one attempt ---------------------------------------------------------------------------
def delivery_send(*, delivery_id: int, token: uuid.UUID | str | None = None) -> None:
    """Make one attempt at a delivery and record what happened (the worker's task calls this).

    ``token`` is the claim the message carries. None: this process claims the delivery
    itself, if it is due and no attempt is under way (the watchdog, the health checks).
    A token that is not one (a message queued before deliveries carried claims) does
    nothing: the periodic check sends that delivery.
    """
    if token is None:
        token, rows = claims.claim(_startable(timezone.now()).filter(id=delivery_id), limit=1)
        if not rows:
            return  # sent, failed, not due yet, or an attempt is under way
    else:
        try:
            token = uuid.UUID(str(token))
        except ValueError:
            log.info("delivery %s: a message without a claim, left to the periodic check", delivery_id)
            return
    with transaction.atomic():
        mine, rows = claims.take(Delivery.objects.select_related("notification"), [delivery_id], token)  # by claim, not state
        if not rows:
            return  # a duplicate message, or the claim lapsed and was taken over
        Delivery.objects.filter(id=delivery_id, claim_token=mine).update(attempt_started_at=timezone.now())
    (d,) = rows
    with claims.held(Delivery, mine):
        error = _attempt(d)
    if error is None:
        Delivery.objects.filter(id=d.id, claim_token=mine).update(  # by claim, not state: see the delivery module
            state=DeliveryState.SENT, sent_at=timezone.now(), attempts=F("attempts") + 1, next_attempt_at=None,
            last_error="", claim_token=None, lease_until=None, attempt_started_at=None,
        )
        return
    text, transient = error
    _failed([d.id], mine, text, transient=transient)


def _attempt(d: Delivery) -> tuple[str, bool] | None:
    """Send ``d`` once; None when it went out, else (the error with secrets masked, whether to retry)."""
    url = ""
    try:
        if d.channel == Delivery.Channel.EMAIL:
            send_email(d.address, d.notification)
        else:
            url = url_for(d)
            send_apprise(url, d.notification)
        return None
    except SendFailed as e:
        text, transient = str(e), e.retry
    except SoftTimeLimitExceeded:
        text, transient = f"took longer than {settings.JITAD_DELIVERY_TIMEOUT:g} s", True
    except Exception as e:  # a bug: recorded and loud (the traceback scrubbed too), not retried
        trace = traceback.format_exc()
        log.error("delivery %s: unexpected error\n%s", d.id, scrub(trace, url) if url else trace)
        text, transient = f"unexpected {type(e).__name__}: {e}", False
    text = scrub(text, url) if url else text
    if settings.EMAIL_HOST_PASSWORD:
        text = text.replace(settings.EMAIL_HOST_PASSWORD, "****")
    return text[:ERROR_MAX], transient


# -- a failed attempt: the engine's routine in the delivery's words ------------------------
def _failed(ids: list[int], token: uuid.UUID | None, error: str, *, transient: bool, rows=None,
            never_finished: dict[int, str] | None = None) -> list[claims.Failed]:
    """Record a failed attempt on the deliveries ``ids`` still claimed with ``token`` (claims.attempt_failed).

    Within the limit the delivery stays pending, due after the backoff, and is claimed for
    a message sent to arrive then; past it (or on a failure that retrying cannot fix) it
    is failed, keeping the error. ``rows`` narrows which deliveries may be recorded (checked
    under the row lock); ``never_finished`` (an attempt whose worker died) holds
    each delivery's error before that attempt, which its record keeps.
    """
    def mark(row: Delivery, exhausted: bool, now) -> list[str]:
        if never_finished is None:
            row.last_error = f"attempt {row.attempts}: {error}"
        else:
            line = f"attempt {row.attempts} {NEVER_FINISHED}" + ("; giving up" if exhausted else "")
            row.last_error = f"{never_finished.get(row.pk, '')}\n{line}".strip()
        row.attempt_started_at = None
        if exhausted:
            row.state, row.next_attempt_at = DeliveryState.FAILED, None
        return ["state", "attempt_started_at"]

    def report(failures: list[claims.Failed]) -> None:
        for f in failures:
            d = f.row
            where = f"{d.get_channel_display()} to {d.address or d.destination}"
            if f.exhausted:
                log.error("delivery %s (%s) failed for good: %s", d.id, where, d.last_error)
                continue
            delay = max(0.0, (d.next_attempt_at - timezone.now()).total_seconds())
            log.warning("delivery %s (%s) failed, retrying in %.0f s: %s", d.id, where, delay, d.last_error)
            _claim_for_message(Delivery.objects.filter(id=d.id, claim_token__isnull=True), limit=1,
                               due=d.next_attempt_at, countdown=delay)

    pending = Delivery.objects.filter(state=DeliveryState.PENDING) if rows is None else rows
    return claims.attempt_failed(pending, ids, token, error=error, transient=transient,
                                 max_attempts=settings.JITAD_DELIVERY_MAX_ATTEMPTS, mark=mark, report=report,
                                 backoff=backoff_seconds)


def _claim_for_message(qs, *, limit: int, due, countdown: float | None = None) -> list[int]:
    """Claim up to ``limit`` deliveries of ``qs`` (free ones) for a message each; returns the ids claimed.

    The claim waits for its message until one attempt's time past ``due``
    (``message_lease``); the messages go out once the caller's transaction commits.
    """
    with transaction.atomic():
        token, rows = claims.claim(qs, limit=limit, until=message_lease(due))
        claimed = [r.pk for r in rows]
        if claimed:
            # Re-queued in bulk (their messages lost, or their claims lapsed behind a busy queue): one
            # batch message, e-mails a chunk per session, as when they were first sent.
            deliveries_enqueue_on_commit(delivery_ids=claimed, token=token, countdown=countdown,
                                         batch=countdown is None)
    return claimed


# -- the broker is down: the watchdog's process sends alerts itself ------------------------
def deliveries_send_here(*, until: float, limit: int = 20, **kwargs) -> int:
    """The broker does not answer: send due security-channel deliveries from this process until ``until``.

    The watchdog's process calls this (the engine's ``broker_unreachable`` signal): an alert
    that waits for a worker would wait for the very outage it reports. Oldest first, at
    most ``limit`` a run, each attempt as the worker makes it (its own timeout, counted,
    retried with backoff), never inside a transaction. Returns how many were attempted.
    """
    token, rows = claims.claim(_startable(timezone.now()).filter(destination=SECURITY).order_by("next_attempt_at"),
                               limit=limit)
    ids = [d.id for d in rows]
    tried = 0
    for delivery_id in ids:
        if time.monotonic() >= until:
            break
        delivery_send(delivery_id=delivery_id, token=token)
        tried += 1
    claims.release(Delivery, ids[tried:], token)  # out of time: the next run, or a worker, sends them
    if tried:
        log.warning("broker unreachable: %d alert delivery(ies) attempted from this process", tried)
    return tried


# -- the periodic check and the admin's resend ---------------------------------------------
def deliveries_resend(*, now=None) -> int:
    """Count attempts whose worker died, and queue again every delivery whose message was lost; returns how many.

    * An attempt whose lease lapsed mid-send never finished: it is a failed attempt
      (``claims.attempt_failed``), retried after the backoff or, past the limit, failed.
    * A pending delivery that nobody holds (its claim lapsed, or the broker refused its
      message) and that is overdue by a whole check interval (messages normally arrive
      well within that) is claimed and queued again; its claim keeps the next checks away
      while that message waits in a busy queue (``message_lease``).
    * A pending delivery out of attempts that nobody holds (recorded before deliveries were
      claimed work, its last attempt under way) is failed as never finished.
    """
    now = now or timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    pending = Delivery.objects.filter(state=DeliveryState.PENDING)
    retried = _never_finished(pending.filter(free, attempt_started_at__isnull=False))

    overdue = pending.filter(free, attempt_started_at__isnull=True,
                             next_attempt_at__lte=now - timedelta(seconds=settings.JITAD_DELIVERY_CHECK_INTERVAL))
    maximum = settings.JITAD_DELIVERY_MAX_ATTEMPTS
    for d in overdue.filter(attempts__gte=maximum).only("id", "attempts", "last_error")[:1000]:
        pending.filter(free, id=d.id).update(
            state=DeliveryState.FAILED, next_attempt_at=None, claim_token=None, lease_until=None,
            last_error=f"{d.last_error}\nattempt {d.attempts} {NEVER_FINISHED}; giving up".strip(),
        )
        log.error("delivery %s failed for good: its last attempt never finished", d.id)
    ids = _claim_for_message(overdue.filter(attempts__lt=maximum).order_by("next_attempt_at"), limit=5000, due=now)
    if ids:
        log.info("re-queueing %d delivery(ies) whose message was lost", len(ids))
    return retried + len(ids)


def _never_finished(lapsed) -> int:
    """Record each attempt in ``lapsed`` (its lease ran out mid-send) as failed; returns how many will be retried."""
    by_token = defaultdict(dict)
    for pk, token, error in lapsed.values_list("id", "claim_token", "last_error")[:1000]:
        by_token[token][pk] = error
    retried = 0
    for token, errors in by_token.items():
        for f in _failed(list(errors), token, NEVER_FINISHED, transient=True, rows=lapsed, never_finished=errors):
            log.error("delivery %s: attempt %d never finished (its worker stopped?)", f.row.id, f.row.attempts)
            retried += not f.exhausted
    return retried


RETRY_CHUNK = 5000  # deliveries an operator's retry moves in one transaction and message


def deliveries_retry(*, delivery_ids: list[int]) -> int:
    """An operator sends failed deliveries again, with a fresh count of attempts.

    RETRY_CHUNK at a time, each chunk in its own transaction with its own message: every statement
    stays far below PostgreSQL's 65,535 parameters (all of a mass expiry's notices, selected in the
    admin after an SMTP outage, are 100,000 ids), and each chunk is either queued or left failed.
    """
    now = timezone.now()
    wanted = list(delivery_ids)
    done = 0
    for i in range(0, len(wanted), RETRY_CHUNK):
        with transaction.atomic():
            ids = list(Delivery.objects.filter(id__in=wanted[i:i + RETRY_CHUNK], state=DeliveryState.FAILED)
                       .values_list("id", flat=True))
            Delivery.objects.filter(id__in=ids).update(state=DeliveryState.PENDING, attempts=0, next_attempt_at=now,
                                                       claim_token=None, lease_until=None, attempt_started_at=None)
            if ids:
                _claim_for_message(Delivery.objects.filter(id__in=ids), limit=len(ids), due=now)
        done += len(ids)
    return done
