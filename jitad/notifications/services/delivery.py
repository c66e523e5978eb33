"""Send one delivery from the worker: claim it, send it outside any transaction, record the outcome.

The database drives it, as for grants: a delivery is due at ``next_attempt_at``; an
attempt claims it by counting the attempt and pushing ``next_attempt_at`` past the
attempt's time limit, so a duplicated message finds nothing to do and a lost one (or a
worker killed mid-send) is picked up by ``deliveries_resend`` once that time has passed.
Failures are retried with exponential backoff and jitter until
JITAD_DELIVERY_MAX_ATTEMPTS, then recorded failed with the (scrubbed) error.
"""
import logging
import smtplib
import time
import traceback
from datetime import datetime, timedelta

import apprise
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from jitad.engine import retry
from jitad.engine.queue import enqueue

from ..models import Delivery, Notification
from .compose import deliveries_enqueue
from .destinations import EMAIL_SCHEME, SECURITY, destination_urls, email_address, redact, scrub

log = logging.getLogger(__name__)
DeliveryState = Delivery.State
ERROR_MAX = 1000

_NOTIFY_TYPE = {
    Notification.Severity.INFO: apprise.NotifyType.INFO,
    Notification.Severity.WARNING: apprise.NotifyType.WARNING,
    Notification.Severity.CRITICAL: apprise.NotifyType.FAILURE,
}


class SendFailed(Exception):
    """A destination did not take the message; ``retry`` says whether trying again may help."""

    def __init__(self, message: str, *, retry: bool = True):
        super().__init__(message)
        self.retry = retry


def attempt_seconds() -> float:
    """How long one attempt may hold its claim: past the task's hard time limit."""
    return settings.JITAD_DELIVERY_TIMEOUT + 30


def backoff_seconds(attempts: int) -> float:
    """The engine's backoff (jitad.engine.retry) on the delivery's own base and cap."""
    return retry.backoff_seconds(attempts, base=settings.JITAD_DELIVERY_RETRY_BASE_SECONDS,
                                 cap=settings.JITAD_DELIVERY_RETRY_MAX_SECONDS)


# -- the two channels --------------------------------------------------------------------
def _text(note: Notification) -> str:
    return f"{note.body}\n\n{note.link}" if note.link else note.body


def _send_email(address: str, note: Notification) -> None:
    message = EmailMessage(subject=f"[jitad] {note.subject}", body=_text(note), to=[address])
    try:
        message.send()
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as e:
        raise SendFailed(f"{type(e).__name__}: {e}", retry=False) from e
    except smtplib.SMTPResponseException as e:
        raise SendFailed(f"{type(e).__name__}: {e.smtp_code} {e.smtp_error!r}", retry=e.smtp_code < 500) from e
    except (smtplib.SMTPException, OSError) as e:  # refused, unreachable, timed out, TLS
        raise SendFailed(f"{type(e).__name__}: {e}") from e


def _url_for(delivery: Delivery) -> str:
    """The real URL behind a delivery, read from the settings now; it must still be the one recorded."""
    urls = destination_urls(delivery.destination) or []
    candidates = urls[delivery.position:delivery.position + 1] + urls
    for url in candidates:
        if redact(url) == delivery.address:
            return url
    raise SendFailed(f"{delivery.destination} no longer holds this URL", retry=False)


def _send_apprise(url: str, note: Notification) -> None:
    if url.lower().startswith(EMAIL_SCHEME):
        try:
            _send_email(email_address(url), note)
        except ValidationError as e:
            raise SendFailed("not a valid e-mail address", retry=False) from e
        return
    sender = apprise.Apprise()
    if not sender.add(url):
        raise SendFailed("not a URL apprise can send to", retry=False)
    timeout = settings.JITAD_DELIVERY_TIMEOUT
    kind = _NOTIFY_TYPE.get(note.severity, apprise.NotifyType.INFO)
    # Plain text, declared as such: apprise escapes it for each service (Slack's <url|label>
    # links and <!channel> mentions become entities, Teams' Markdown is backslash-escaped),
    # so nothing a requester or approver typed turns into a link, a mention or markup.
    # apprise applies the one format to the title as well.
    result = sender.notify(title=note.subject, body=_text(note), notify_type=kind, timeout=timeout,
                           body_format=apprise.NotifyFormat.TEXT)
    if result:
        return
    lines = [e.message for r in result.results for e in r.logs()] + [e.message for e in result.call_logs()]
    if result.status == apprise.AppriseResultStatus.TIMEOUT:
        lines.append(f"no answer within {timeout:g} s")
    raise SendFailed(scrub("; ".join(dict.fromkeys(lines)) or "refused or unreachable", url))


# -- one attempt ---------------------------------------------------------------------------
def delivery_send(*, delivery_id: int, due: str | None = None) -> None:
    """Make one attempt at a due delivery and record what happened (the worker's task calls this).

    ``due`` comes with a message from the periodic check: the ``next_attempt_at`` it set
    when it queued the delivery again. That message may claim the delivery early, as
    long as nothing else has touched it since.
    """
    now = timezone.now()
    maximum = settings.JITAD_DELIVERY_MAX_ATTEMPTS
    is_due = Q(next_attempt_at__lte=now)
    if due:
        is_due |= Q(next_attempt_at=datetime.fromisoformat(due))
    with transaction.atomic():
        claimed = Delivery.objects.filter(
            is_due, id=delivery_id, state=DeliveryState.PENDING, attempts__lt=maximum
        ).update(attempts=F("attempts") + 1, next_attempt_at=now + timedelta(seconds=attempt_seconds()))
    if not claimed:
        return  # sent, failed, not due yet, or another attempt holds it
    d = Delivery.objects.select_related("notification").get(id=delivery_id)
    url = ""
    try:
        if d.channel == Delivery.Channel.EMAIL:
            _send_email(d.address, d.notification)
        else:
            url = _url_for(d)
            _send_apprise(url, d.notification)
    except SendFailed as e:
        _failed(d, str(e), retry=e.retry, url=url)
        return
    except SoftTimeLimitExceeded:
        _failed(d, f"took longer than {settings.JITAD_DELIVERY_TIMEOUT:g} s", retry=True, url=url)
        return
    except Exception as e:  # a bug: recorded and loud (the traceback scrubbed too), not retried
        trace = traceback.format_exc()
        log.error("delivery %s: unexpected error\n%s", d.id, scrub(trace, url) if url else trace)
        _failed(d, f"unexpected {type(e).__name__}: {e}", retry=False, url=url)
        return
    Delivery.objects.filter(id=d.id, state=DeliveryState.PENDING).update(
        state=DeliveryState.SENT, sent_at=timezone.now(), next_attempt_at=None, last_error=""
    )


def _failed(d: Delivery, error: str, *, retry: bool, url: str) -> None:
    error = scrub(error, url) if url else error
    if settings.EMAIL_HOST_PASSWORD:
        error = error.replace(settings.EMAIL_HOST_PASSWORD, "****")
    error = error[:ERROR_MAX]
    message = f"attempt {d.attempts}: {error}"
    where = f"{d.get_channel_display()} to {d.address or d.destination}"
    if retry and d.attempts < settings.JITAD_DELIVERY_MAX_ATTEMPTS:
        delay = backoff_seconds(d.attempts)
        Delivery.objects.filter(id=d.id, state=DeliveryState.PENDING).update(
            last_error=message, next_attempt_at=timezone.now() + timedelta(seconds=delay)
        )
        log.warning("delivery %s (%s) failed, retrying in %.0f s: %s", d.id, where, delay, message)
        transaction.on_commit(lambda: _enqueue_retry(d.id, delay))
        return
    Delivery.objects.filter(id=d.id, state=DeliveryState.PENDING).update(state=DeliveryState.FAILED, last_error=message, next_attempt_at=None)
    log.error("delivery %s (%s) failed for good: %s", d.id, where, message)


def _enqueue_retry(delivery_id: int, delay: float) -> None:
    # With the broker down the periodic check re-sends it anyway.
    enqueue("jitad.notifications.send", delivery_id, countdown=delay)


def deliveries_send_here(*, until: float, limit: int = 20, **kwargs) -> int:
    """The broker does not answer: send due security-channel deliveries from this process until ``until``.

    The watchdog's process calls this (the engine's ``broker_unreachable`` signal): an alert
    that waits for a worker would wait for the very outage it reports. Oldest first, at
    most ``limit`` a run, each attempt as the worker makes it (its own timeout, counted,
    retried with backoff), never inside a transaction. Returns how many were attempted.
    """
    ids = list(Delivery.objects.filter(state=DeliveryState.PENDING, destination=SECURITY, next_attempt_at__lte=timezone.now())
               .order_by("next_attempt_at").values_list("id", flat=True)[:limit])
    tried = 0
    for delivery_id in ids:
        if time.monotonic() >= until:
            break
        delivery_send(delivery_id=delivery_id)
        tried += 1
    if tried:
        log.warning("broker unreachable: %d alert delivery(ies) attempted from this process", tried)
    return tried


# -- the periodic check and the admin's resend ---------------------------------------------
def deliveries_resend(*, now=None) -> int:
    """Queue again every pending delivery whose message was lost; fail those out of attempts.

    A delivery counts as lost once it is overdue by a whole check interval (messages
    normally arrive well within that). Queueing it again moves its ``next_attempt_at``
    past an attempt's time limit, so the next checks leave it alone while that message
    waits in a busy queue; the message carries the mark and may claim it before then.
    """
    now = now or timezone.now()
    overdue = Delivery.objects.filter(
        state=DeliveryState.PENDING, next_attempt_at__lte=now - timedelta(seconds=settings.JITAD_DELIVERY_CHECK_INTERVAL)
    )
    maximum = settings.JITAD_DELIVERY_MAX_ATTEMPTS
    spent = overdue.filter(attempts__gte=maximum)
    for d in spent.only("id", "attempts", "last_error")[:1000]:
        Delivery.objects.filter(id=d.id, state=DeliveryState.PENDING).update(
            state=DeliveryState.FAILED, next_attempt_at=None,
            last_error=f"{d.last_error}\nattempt {d.attempts} never finished (worker stopped?); giving up".strip(),
        )
        log.error("delivery %s failed for good: its last attempt never finished", d.id)
    again = overdue.filter(attempts__lt=maximum)
    mark = now + timedelta(seconds=attempt_seconds())
    with transaction.atomic():
        ids = list(again.order_by("next_attempt_at").values_list("id", flat=True)[:5000])
        if ids:
            again.filter(id__in=ids).update(next_attempt_at=mark)
            log.info("re-queueing %d delivery(ies) whose message was lost", len(ids))
            transaction.on_commit(lambda: deliveries_enqueue(delivery_ids=ids, due=mark))
    return len(ids)


def deliveries_retry(*, delivery_ids: list[int]) -> int:
    """An operator sends failed deliveries again, with a fresh count of attempts."""
    with transaction.atomic():
        ids = list(Delivery.objects.filter(id__in=delivery_ids, state=DeliveryState.FAILED).values_list("id", flat=True))
        Delivery.objects.filter(id__in=ids).update(state=DeliveryState.PENDING, attempts=0, next_attempt_at=timezone.now())
        transaction.on_commit(lambda: deliveries_enqueue(delivery_ids=ids))
    return len(ids)
