"""Alerts for conditions that last: raised once while open, reminded now and then, resolved once."""
import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from jitad.humantime import when

from ..models import AlertCondition, Notification
from .compose import alert_raise

log = logging.getLogger(__name__)


def condition_raise(*, key: str, event: str, subject: str, body: str,
                    severity: str = Notification.Severity.CRITICAL, link: str = "") -> Notification | None:
    """Open ``key`` and alert; if it is already open, count it and alert only as a reminder.

    Returns the notification sent, or None when the open condition was only counted.
    Runs in the caller's transaction (one is opened if there is none).
    """
    now = timezone.now()
    remind = timedelta(minutes=settings.JITAD_ALERT_REMIND_MINUTES)
    with transaction.atomic():
        row = AlertCondition.objects.select_for_update().filter(key=key).first()
        if row is None:
            try:
                with transaction.atomic():
                    row = AlertCondition.objects.create(key=key, event=event, severity=severity, subject=subject[:200],
                                                        opened_at=now, last_alert_at=now)
            except IntegrityError:  # raised by another process at the same moment: theirs alerts
                return None
            return alert_raise(event=event, severity=severity, subject=subject, body=body, link=link,
                               object_type="condition", object_id=key[:64])
        if row.resolved_at is not None:  # it came back
            row.opened_at, row.resolved_at, row.occurrences = now, None, 1
            row.event, row.severity, row.subject, row.last_alert_at = event, severity, subject[:200], now
            row.save()
            return alert_raise(event=event, severity=severity, subject=subject, body=body, link=link,
                               object_type="condition", object_id=key[:64])
        row.occurrences += 1
        fields = ["occurrences"]
        note = None
        if now - row.last_alert_at >= remind > timedelta(0):
            row.last_alert_at = now
            fields.append("last_alert_at")
            since = f"open since {when(row.opened_at)}, seen {row.occurrences} times"
            note = alert_raise(event=event, severity=severity, subject=f"Still: {subject}", body=f"{body}\n({since})",
                               link=link, object_type="condition", object_id=key[:64])
        row.save(update_fields=fields)
        return note


def condition_resolve(*, key: str, event: str, subject: str, body: str, link: str = "") -> Notification | None:
    """Close ``key`` if it is open and send one "Resolved" message; nothing if it was not open."""
    now = timezone.now()
    with transaction.atomic():
        row = AlertCondition.objects.select_for_update().filter(key=key, resolved_at__isnull=True).first()
        if row is None:
            return None
        row.resolved_at = now
        row.save(update_fields=["resolved_at"])
        lasted = now - row.opened_at
        return alert_raise(event=event, severity=Notification.Severity.INFO, subject=f"Resolved: {subject}",
                           body=f"{body}\n(open for {_duration(lasted)} since {when(row.opened_at)})",
                           link=link, object_type="condition", object_id=key[:64])


def conditions_open(*, prefix: str) -> list[AlertCondition]:
    """Open conditions whose key starts with ``prefix``."""
    return list(AlertCondition.objects.filter(key__startswith=prefix, resolved_at__isnull=True).order_by("key"))


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
