"""Many at once: a batch's e-mails over one SMTP session per chunk, each person's notices of one kind in one e-mail.

A batch message carries a revocation batch's notices or a request told to many approvers.
Each delivery stays its own claimed work (jitad.engine.claims), recorded sent or failed as
its e-mail goes; the attempt, the backoff and the failure routine are ``delivery``'s.
"""
import logging
import time
import uuid
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jitad.engine import claims, queue

from ..models import Delivery, Notification
from .channels import SKIPPED, SendFailed, send_emails
from .compose import SEND_BATCH, deliveries_enqueue, message_lease
from .delivery import ERROR_MAX, _failed, _startable
from .waiting import _wait_for_revocations

log = logging.getLogger(__name__)
DeliveryState = Delivery.State
EMAIL_SECONDS = 0.2  # what one e-mail may take on a working SMTP server, for a queued chunk's claim

__all__ = ["deliveries_send_batch", "email_batch_seconds"]

def email_batch_seconds() -> float:
    """How long one batch task may go on starting e-mails (its time limits add one send's timeout)."""
    return settings.JITAD_DELIVERY_TIMEOUT * 5


def deliveries_send_batch(*, delivery_ids: list[int], token: uuid.UUID | str) -> None:
    """Send the deliveries one message carries (a revocation batch's notices, a request told to many approvers).

    E-mails go out JITAD_EMAIL_BATCH at a time, each chunk over one SMTP session, the first
    chunk here and the others as messages of their own (so one task's time stays bounded);
    apprise deliveries get one message each, so a slow endpoint never holds up the others.
    Each delivery is still its own claimed work: taken with the claim, marked as started and
    recorded sent or failed one by one as it goes (a worker that dies mid-chunk leaves only the
    e-mail in flight in doubt), retried with its own backoff.
    """
    deadline = time.monotonic() + email_batch_seconds()
    ids = list(delivery_ids)
    channels = dict(Delivery.objects.filter(id__in=ids, claim_token=token).values_list("id", "channel"))
    emails = [i for i in ids if channels.get(i) == Delivery.Channel.EMAIL]
    deliveries_enqueue(delivery_ids=[i for i in ids if channels.get(i) == Delivery.Channel.APPRISE], token=token)
    if emails and _wait_for_revocations(emails, token):
        return
    chunk = settings.JITAD_EMAIL_BATCH
    now = timezone.now()
    for k, i in enumerate(range(chunk, len(emails), chunk), start=1):
        rest = emails[i:i + chunk]
        # Its message waits behind the chunks before it: its claim waits as long.
        Delivery.objects.filter(claims.holding(token), id__in=rest).update(
            lease_until=message_lease(now) + timedelta(seconds=k * chunk * EMAIL_SECONDS))
        if not queue.enqueue(SEND_BATCH, rest, str(token)):
            claims.release(Delivery, emails[i:], token)  # the periodic check sends them
            log.warning("%d e-mail delivery(ies) left to the periodic check", len(emails) - i)
            break
    if emails:
        _emails_send(emails[:chunk], token, deadline=deadline)


def _alike(rows: list[Delivery], mine, now) -> list[list[Delivery]]:
    """The chunk's e-mails, each with the other notices of its kind waiting for the same person.

    A mass expiry tells each holder of each group in the group's own message, so a person
    who held a hundred groups has a hundred e-mails waiting. Those not under way (no attempt
    started) and due are taken over with this chunk's claim, whether free or claimed for a
    message still in the queue (that message then finds its claim taken and sends nothing),
    and go out in the person's one e-mail, at most JITAD_EMAIL_COMBINE_MAX notices each.
    Returns the groups in the chunk's order.
    """
    most = settings.JITAD_EMAIL_COMBINE_MAX
    kinds = {(d.address, d.notification.event) for d in rows}
    found: list[Delivery] = []
    if most > 1 and rows:
        with transaction.atomic():
            # The deliveries alone, then their notices by key. Joined to the notices and filtered by event, the
            # query was planned on statistics from before a burst and became a nested loop over every notice
            # of that event for each delivery (96 s for one chunk of a 100,000-notice wave).
            others = list(
                _startable(now).filter(channel=Delivery.Channel.EMAIL, address__in={a for a, _ in kinds})
                .exclude(claim_token=mine).order_by("id")
                .select_for_update(skip_locked=True)[:len(rows) * (most - 1)])
            notes = Notification.objects.in_bulk({d.notification_id for d in others})
            for d in others:
                d.notification = notes[d.notification_id]
            found = [d for d in others if (d.address, d.notification.event) in kinds]
            if found:
                Delivery.objects.filter(id__in=[d.id for d in found]).update(
                    claim_token=mine, lease_until=claims.lease_until())
    groups: dict[tuple[str, str], list[list[Delivery]]] = {}
    for d in rows + found:
        runs = groups.setdefault((d.address, d.notification.event), [[]])
        if len(runs[-1]) >= most:
            runs.append([])
        runs[-1].append(d)
    if found:
        log.info("%d e-mail notice(s) joined others of their kind to the same people", len(found))
    return [run for runs in groups.values() for run in runs]


def _emails_send(ids: list[int], token, *, deadline: float) -> None:
    # By claim, not by state (the delivery module says why): a row that still carries the claim is pending.
    with transaction.atomic():
        mine, rows = claims.take(Delivery.objects.filter(channel=Delivery.Channel.EMAIL).select_related("notification"),
                                 ids, token)
    if not rows:
        return  # a duplicate message, or the claims lapsed and were taken over
    with claims.held(Delivery, mine):
        groups = _alike(rows, mine, timezone.now())
        held: dict[int, list[Delivery]] = {}

        def starting(i: int) -> list:
            """Mark the e-mail's notices as under way; those another chunk took over meanwhile are not sent here."""
            wanted = [d.id for d in groups[i]]
            with transaction.atomic():
                still = set(Delivery.objects.select_for_update().filter(
                    id__in=wanted, claim_token=mine, attempt_started_at__isnull=True).values_list("id", flat=True))
                Delivery.objects.filter(id__in=still).update(attempt_started_at=timezone.now())
            held[i] = [d for d in groups[i] if d.id in still]
            return [d.notification for d in held[i]]

        done = 0
        try:
            for outcome in send_emails([(g[0].address, [d.notification for d in g]) for g in groups],
                                       deadline=deadline, starting=starting):
                if outcome is not SKIPPED:
                    _email_record(held[done], mine, outcome)
                done += 1
        except SoftTimeLimitExceeded:  # one send hung past its own timeout: that one failed
            if held.get(done):
                _email_record(held[done], mine, SendFailed(f"took longer than {settings.JITAD_DELIVERY_TIMEOUT:g} s"))
                done += 1
    left = [d.id for g in groups[done:] for d in g]
    if left:  # not started in this task's time: handed back unattempted, the periodic check sends them
        left = Delivery.objects.filter(id__in=left, claim_token=mine, attempt_started_at__isnull=True).update(
            claim_token=None, lease_until=None)
        if left:
            log.warning("%d e-mail delivery(ies) not started in time, left to the periodic check", left)


def _email_record(ds: list[Delivery], token, outcome: SendFailed | None) -> None:
    """Record one e-mail's attempt (for every notice it carried) the moment it is known."""
    ids = [d.id for d in ds]
    if outcome is None:
        Delivery.objects.filter(id__in=ids, claim_token=token).update(  # by claim, not state: see the delivery module
            state=DeliveryState.SENT, sent_at=timezone.now(), attempts=F("attempts") + 1, next_attempt_at=None,
            last_error="", claim_token=None, lease_until=None, attempt_started_at=None,
        )
        return
    text = str(outcome)
    if settings.EMAIL_HOST_PASSWORD:
        text = text.replace(settings.EMAIL_HOST_PASSWORD, "****")
    _failed(ids, token, text[:ERROR_MAX], transient=outcome.retry)
