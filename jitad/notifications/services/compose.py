"""Record notifications and their deliveries in the caller's transaction; send them after commit.

Deliveries are claimed work (jitad.engine): each pending delivery is recorded claimed, and
the message that sends it carries the claim's token; a revocation's e-mails are recorded
unclaimed instead, for the ``resume`` chain that sends them once revocations stop. A message
the broker refuses hands its claims back, and the periodic check (``deliveries_resend``)
sends those.
"""
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jitad import metrics
from jitad.audit.services import audit_record
from jitad.bulk import insert_many
from jitad.engine import claims, queue
from jitad.engine.services import lease_release, lease_take

from ..models import NOT_SET, Delivery, DigestEntry, Notification
from .destinations import SECURITY, destination_urls, redact

log = logging.getLogger(__name__)
SUBJECT_MAX = 200
SEND = "jitad.notifications.send"
SEND_BATCH = "jitad.notifications.send_batch"


def attempt_seconds() -> float:
    """How long one attempt may take: past the task's hard time limit."""
    return settings.JITAD_DELIVERY_TIMEOUT + 30


def message_lease(due: datetime) -> datetime:
    """Until when a claim waits for its message: one attempt's time past ``due``.

    A message may wait behind others in a busy notifications queue; the periodic check
    claims the delivery again (and sends another message) only once this has passed.
    """
    return due + timedelta(seconds=attempt_seconds())


@dataclass
class Outgoing:
    """One message to record: what it says, and who gets it.

    ``people`` are users: each with an e-mail address gets an e-mail delivery, the others
    none. ``destinations`` are variable names (destinations.SECURITY, APPROVALS, or
    named_destination(name)); each URL they hold gets an apprise delivery.
    """

    event: str
    subject: str
    body: str
    link: str = ""
    severity: str = Notification.Severity.INFO
    object_type: str = ""
    object_id: str = ""
    people: Sequence = field(default_factory=tuple)
    destinations: Sequence[str] = field(default_factory=tuple)


def _deliveries(note: Notification, out: Outgoing, now, token: uuid.UUID, *, email_waits: bool = False) -> list[Delivery]:
    """The deliveries of one message; the pending ones claimed with ``token`` for the message that sends them,
    except e-mails that wait for the ``resume`` chain (``email_waits``): those nobody holds."""
    claim = {"claim_token": token, "lease_until": message_lease(now)}
    rows, seen = [], set()
    for person in out.people:
        address = (getattr(person, "email", "") or "").strip()
        if not address or address.lower() in seen:
            continue
        seen.add(address.lower())
        rows.append(Delivery(notification=note, channel=Delivery.Channel.EMAIL,
                             destination=person.get_username(), address=address, next_attempt_at=now,
                             **({} if email_waits else claim)))
    for destination in dict.fromkeys(out.destinations):
        urls = destination_urls(destination)
        if not urls:
            # Recorded as failed so an operator sees that a message reached nobody there.
            rows.append(Delivery(notification=note, channel=Delivery.Channel.APPRISE, destination=destination,
                                 state=Delivery.State.FAILED, last_error=NOT_SET.format(destination=destination)))
            continue
        for position, url in enumerate(urls):
            shown = redact(url)
            row = Delivery(notification=note, channel=Delivery.Channel.APPRISE, destination=destination,
                           position=position, address=shown or "", next_attempt_at=now, **claim)
            if shown is None:
                row.state, row.next_attempt_at, row.claim_token, row.lease_until = Delivery.State.FAILED, None, None, None
                row.last_error = f"entry {position + 1} of {destination} is not a URL jitad can send to"
            rows.append(row)
    return rows


def notifications_create(*, items: Iterable[Outgoing], after_revocations: bool = False) -> list[Notification]:
    """Record many notifications with their deliveries in a few queries; send them on commit.

    For batches (a sweep revoking thousands of grants, a request told to many approvers): two
    bulk inserts, no per-item query, and one task message for all their deliveries.

    ``after_revocations`` (a revocation's notices, recorded while it runs): their e-mails wait with the
    others while revocations run (``waiting``), so they are recorded unclaimed, with no message of their
    own, and the ``resume`` chain is started on commit; it sends them all together once no revocation has
    run for a second. Without it, the e-mails' message would only find the revocations running and hand
    them back (a mass expiry's hundred messages, each read, released and written again). Other
    destinations go at once, as always.
    """
    # A message only for people without an address reaches nobody: no row at all.
    items = [o for o in items if o.destinations or any(getattr(p, "email", "") for p in o.people)]
    if not items:
        return []
    now = timezone.now()
    waits = after_revocations and settings.JITAD_NOTICES_WAIT_SECONDS > 0
    notes = [
        Notification(created_at=now, event=o.event, severity=o.severity, subject=o.subject[:SUBJECT_MAX], body=o.body,
                     link=o.link, object_type=o.object_type, object_id=str(o.object_id)[:64])
        for o in items
    ]
    insert_many(Notification, notes)
    token = uuid.uuid4()
    rows = [d for note, o in zip(notes, items) for d in _deliveries(note, o, now, token, email_waits=waits)]
    insert_many(Delivery, rows)
    for d in rows:
        if d.state == Delivery.State.FAILED:
            log.error("notification %s (%s) not delivered to %s: %s", d.notification_id, d.notification.event,
                      d.destination, d.last_error)
    pending = [d.id for d in rows if d.state == Delivery.State.PENDING and d.claim_token is not None]
    if any(d.state == Delivery.State.PENDING and d.claim_token is None for d in rows):  # e-mails that wait
        transaction.on_commit(_resume_after_commit)
    # Several deliveries (a revocation's notices, a request told to sixty approvers) publish one
    # message, not one per delivery: the caller (a web request, the grant engine) moves on at
    # once, and the notifications worker sends their e-mails a chunk per SMTP session.
    deliveries_enqueue_on_commit(delivery_ids=pending, token=token, batch=len(pending) > 1)
    return notes


def notification_create(*, event: str, subject: str, body: str, link: str = "",
                        severity: str = Notification.Severity.INFO, object_type: str = "", object_id="",
                        people: Sequence = (), destinations: Sequence[str] = ()) -> Notification | None:
    """Record one notification with a delivery per recipient and destination URL; send them on commit.

    None when it would reach nobody (only people, none of them with an e-mail address).
    """
    notes = notifications_create(items=[Outgoing(event=event, subject=subject, body=body, link=link, severity=severity,
                                                 object_type=object_type, object_id=str(object_id), people=people,
                                                 destinations=destinations)])
    return notes[0] if notes else None


def alert_raise(*, event: str, subject: str, body: str, severity: str = Notification.Severity.WARNING,
                object_type: str = "", object_id: str = "", link: str = "", digest_kind: str = "",
                person: str = "") -> Notification | None:
    """Tell the security channel (JITAD_ALERT_URLS); delivered by the worker once the transaction commits.

    ``digest_kind`` marks a routine event ("enrolled an authenticator app"): while
    JITAD_ALERT_DIGEST_MINUTES is above 0 it waits for the channel's next digest, counted
    under that kind with ``person`` named, and None is returned. The caller decides what is
    routine; anything else is sent at once, and recorded in the audit chain (``alert.raised``)
    so that it reaches the SIEM stream too.
    """
    if digest_kind and settings.JITAD_ALERT_DIGEST_MINUTES > 0:
        log.info("alert %s for the next digest: %s", event, subject)
        DigestEntry.objects.create(destination=SECURITY, event=event, kind=digest_kind[:100], subject=subject[:SUBJECT_MAX],
                                   person=person[:150], object_type=object_type, object_id=str(object_id)[:64])
        return None
    log.warning("alert %s: %s", event, subject)
    with transaction.atomic():
        transaction.on_commit(lambda: metrics.count(metrics.alerts, event=event, severity=str(severity)))
        # Every alert is in the audit chain too, and so in the SIEM stream.
        # Kept apart from the object's own trail (object type "alert", id "<type>:<id>"), whose
        # events are its state changes; searching "checkout:17" finds the alerts about it.
        about = f"{object_type}:{object_id}" if object_type else event
        audit_record(actor="system:alerts", action="alert.raised", object_type="alert", object_id=about[:64],
                     after=str(severity)[:32], reason=subject[:500],
                     data={"event": event, "object_type": object_type, "object_id": str(object_id)})
        return notification_create(event=event, subject=subject, body=body, link=link, severity=severity,
                                   object_type=object_type, object_id=object_id, destinations=[SECURITY])


def deliveries_enqueue_on_commit(*, delivery_ids: list[int], token: uuid.UUID, batch: bool = False,
                                 countdown: float | None = None) -> None:
    """Once the caller commits, send the deliveries claimed with ``token``: one message each, or one for all.

    ``batch``: one message for many deliveries, whose e-mails the notifications worker sends
    a chunk per SMTP session (``deliveries_send_batch``; a sweep revoking thousands of grants
    publishes one message and moves on). A broker that refuses hands the claims back to the
    periodic check.
    """
    ids = list(delivery_ids)
    if not ids:
        return
    if batch and len(ids) > 1:
        queue.enqueue_on_commit(SEND_BATCH, ids, str(token), on_failure=lambda: _left_to_the_check(ids, token))
    elif len(ids) == 1:
        options = {} if countdown is None else {"countdown": countdown}
        queue.enqueue_on_commit(SEND, ids[0], str(token), on_failure=lambda: _left_to_the_check(ids, token), **options)
    else:
        # One callback for the lot, so a broker that is down costs one refusal, not one per delivery.
        transaction.on_commit(lambda: deliveries_enqueue(delivery_ids=ids, token=token))


def deliveries_enqueue(*, delivery_ids: list[int], token) -> None:
    """Now, one message per delivery, each carrying ``token``; the first refusal hands the rest back."""
    ids = list(delivery_ids)
    for i, delivery_id in enumerate(ids):
        if not queue.enqueue(SEND, delivery_id, str(token)):
            _left_to_the_check(ids[i:], token)
            return


RESUME = "jitad.notifications.resume"
RESUME_LEASE = "notices-resume"
RESUME_SECONDS = 1.0  # how often the waiting e-mails look again
RESUME_HOLD_SECONDS = 10.0  # the chain's lease, renewed at each look: a lost message frees it this long after


def resume_soon() -> bool:
    """Start the ``resume`` chain that sends the e-mails waiting for revocations to end (``waiting``), unless
    one runs (its lease, held by the chain's own name); False if the broker refused its message."""
    holder = uuid.uuid4().hex
    if not lease_take(name=RESUME_LEASE, holder=holder, seconds=RESUME_HOLD_SECONDS):
        return True  # a chain runs: it sends these too
    if queue.enqueue(RESUME, holder, countdown=RESUME_SECONDS):
        return True
    lease_release(name=RESUME_LEASE, holder=holder)  # no chain behind it: the next batch tries again
    return False


def _resume_after_commit() -> None:
    if not resume_soon():
        log.warning("notice e-mails wait for the periodic check (the broker refused the resume message)")


def _left_to_the_check(ids: list[int], token) -> None:
    released = claims.release(Delivery, ids, token)
    log.warning("%d delivery(ies) left to the periodic check", released)
