"""Conditions: one alert while a cause lasts, a reminder now and then, one "Resolved" when it ends."""
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jitad.notifications.models import AlertCondition, Notification
from jitad.notifications.services import condition_raise, condition_resolve, conditions_open


def _raise(key="directory.unreachable"):
    return condition_raise(key=key, event="directory.unreachable", subject="No DC answers", body="all down")


@pytest.mark.django_db
def test_raised_once_while_open_then_resolved_once(settings):
    settings.JITAD_ALERT_REMIND_MINUTES = 60
    assert _raise() is not None
    assert _raise() is None and _raise() is None  # the same cause, seen again: counted, not re-sent
    row = AlertCondition.objects.get(key="directory.unreachable")
    assert row.is_open and row.occurrences == 3
    resolved = condition_resolve(key="directory.unreachable", event="directory.unreachable.resolved",
                                 subject="No DC answers", body="one answers")
    assert resolved.subject == "Resolved: No DC answers" and resolved.severity == Notification.Severity.INFO
    assert condition_resolve(key="directory.unreachable", event="x", subject="s", body="b") is None  # not open
    assert Notification.objects.filter(event="directory.unreachable").count() == 1
    assert _raise() is not None  # it came back: a new alert
    assert [c.key for c in conditions_open(prefix="directory.")] == ["directory.unreachable"]


@pytest.mark.django_db
def test_an_open_condition_is_reminded(settings):
    settings.JITAD_ALERT_REMIND_MINUTES = 30
    _raise()
    AlertCondition.objects.update(last_alert_at=timezone.now() - timedelta(minutes=31))
    reminder = _raise()
    assert reminder.subject == "Still: No DC answers" and "seen 2 times" in reminder.body
    assert _raise() is None


@pytest.mark.django_db(transaction=True)
def test_raised_at_the_same_moment_by_many_processes_alerts_once():
    """GIVEN eight watchdogs (threads with their own connections) seeing the same new cause
    at the same moment THEN exactly one alert goes out."""
    barrier = threading.Barrier(8)

    def raise_it():
        try:
            barrier.wait()
            _raise("grant.revoke_failed:DirectoryUnavailable")
        finally:
            connection.close()

    threads = [threading.Thread(target=raise_it) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Notification.objects.filter(object_id="grant.revoke_failed:DirectoryUnavailable").count() == 1
