"""Record notifications and their deliveries in the caller's transaction; send them after commit."""
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jitad.engine.queue import enqueue

from ..models import NOT_SET, Delivery, DigestEntry, Notification
from .destinations import SECURITY, destination_urls, redact

log = logging.getLogger(__name__)
SUBJECT_MAX = 200


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


def _deliveries(note: Notification, out: Outgoing, now) -> list[Delivery]:
    rows, seen = [], set()
    for person in out.people:
        address = (getattr(person, "email", "") or "").strip()
        if not address or address.lower() in seen:
            continue
        seen.add(address.lower())
        rows.append(Delivery(notification=note, channel=Delivery.Channel.EMAIL,
                             destination=person.get_username(), address=address, next_attempt_at=now))
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
                           position=position, address=shown or "", next_attempt_at=now)
            if shown is None:
                row.state, row.next_attempt_at = Delivery.State.FAILED, None
                row.last_error = f"entry {position + 1} of {destination} is not a URL jitad can send to"
            rows.append(row)
    return rows


def notifications_create(*, items: Iterable[Outgoing]) -> list[Notification]:
    """Record many notifications with their deliveries in a few queries; send them on commit.

    For batches (a sweep revoking thousands of grants): two bulk inserts, no per-item
    query, and one task message for all their deliveries.
    """
    # A message only for people without an address reaches nobody: no row at all.
    items = [o for o in items if o.destinations or any(getattr(p, "email", "") for p in o.people)]
    if not items:
        return []
    now = timezone.now()
    notes = [
        Notification(created_at=now, event=o.event, severity=o.severity, subject=o.subject[:SUBJECT_MAX], body=o.body,
                     link=o.link, object_type=o.object_type, object_id=str(o.object_id)[:64])
        for o in items
    ]
    Notification.objects.bulk_create(notes)
    rows = [d for note, o in zip(notes, items) for d in _deliveries(note, o, now)]
    Delivery.objects.bulk_create(rows)
    for d in rows:
        if d.state == Delivery.State.FAILED:
            log.error("notification %s (%s) not delivered to %s: %s", d.notification_id, d.notification.event,
                      d.destination, d.last_error)
    pending = [d.id for d in rows if d.state == Delivery.State.PENDING]
    if len(notes) > 1 and len(pending) > 1:
        # A batch (a revocation, the expiry warnings) publishes one message, not one per
        # delivery: the caller's task (often the grant engine's) moves on at once.
        transaction.on_commit(lambda: deliveries_enqueue_batch(delivery_ids=pending))
    elif pending:
        transaction.on_commit(lambda: deliveries_enqueue(delivery_ids=pending))
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
    routine; anything else is sent at once.
    """
    if digest_kind and settings.JITAD_ALERT_DIGEST_MINUTES > 0:
        log.info("alert %s for the next digest: %s", event, subject)
        DigestEntry.objects.create(destination=SECURITY, event=event, kind=digest_kind[:100], subject=subject[:SUBJECT_MAX],
                                   person=person[:150], object_type=object_type, object_id=str(object_id)[:64])
        return None
    log.warning("alert %s: %s", event, subject)
    return notification_create(event=event, subject=subject, body=body, link=link, severity=severity,
                               object_type=object_type, object_id=object_id, destinations=[SECURITY])


def deliveries_enqueue(*, delivery_ids: list[int], due=None) -> None:
    """One task per delivery. A broker that is down loses nothing: the periodic check re-sends.

    ``due`` is the periodic check's mark (the ``next_attempt_at`` it set when re-queueing):
    the task may claim a delivery that still carries it, although it is not due yet.
    """
    extra = (due.isoformat(),) if due is not None else ()
    for i, delivery_id in enumerate(delivery_ids):
        if not enqueue("jitad.notifications.send", delivery_id, *extra):
            log.warning("%d delivery(ies) left to the periodic check", len(delivery_ids) - i)
            return


def deliveries_enqueue_batch(*, delivery_ids: list[int]) -> None:
    """One task for many deliveries; the notifications worker fans it out into one task per delivery."""
    if not enqueue("jitad.notifications.send_batch", list(delivery_ids)):
        log.warning("%d delivery(ies) left to the periodic check", len(delivery_ids))
