"""Raise alerts (recorded, then delivered by a task after commit) and deliver them with apprise."""
import logging

import apprise
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import Notification

log = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """At least one destination did not accept the message."""


def alert_raise(*, event: str, subject: str, body: str, severity: str = Notification.Severity.WARNING,
                object_type: str = "", object_id: str = "") -> Notification:
    """Record an alert and queue its delivery once the current transaction commits."""
    note = Notification.objects.create(
        event=event,
        severity=severity,
        subject=subject[:200],
        body=body,
        object_type=object_type,
        object_id=str(object_id),
    )
    log.warning("alert %s: %s", event, subject)
    from .tasks import notification_deliver

    transaction.on_commit(lambda: notification_deliver.delay(note.id))
    return note


def notification_deliver(*, notification: Notification, final_attempt: bool) -> None:
    """Send one notification to every configured destination; record the outcome.

    Raises DeliveryFailed when a destination refused it and attempts remain.
    """
    urls = list(settings.JITAD_ALERT_URLS)
    notification.attempts += 1
    if not urls:
        notification.state = Notification.State.FAILED
        notification.last_error = "no alert destinations configured (JITAD_ALERT_URLS)"
        notification.save(update_fields=["attempts", "state", "last_error"])
        log.error("alert %s not delivered: %s", notification.event, notification.last_error)
        return
    sender = apprise.Apprise()
    for url in urls:
        sender.add(url)
    notify_type = {
        Notification.Severity.INFO: apprise.NotifyType.INFO,
        Notification.Severity.WARNING: apprise.NotifyType.WARNING,
        Notification.Severity.CRITICAL: apprise.NotifyType.FAILURE,
    }[notification.severity]
    ok = sender.notify(title=notification.subject, body=notification.body, notify_type=notify_type)
    if ok:
        notification.state = Notification.State.SENT
        notification.sent_at = timezone.now()
        notification.last_error = ""
        notification.save(update_fields=["attempts", "state", "sent_at", "last_error"])
        return
    notification.last_error = f"attempt {notification.attempts}: a destination refused the message or was unreachable"
    if final_attempt:
        notification.state = Notification.State.FAILED
    notification.save(update_fields=["attempts", "state", "last_error"])
    if not final_attempt:
        raise DeliveryFailed(notification.last_error)
