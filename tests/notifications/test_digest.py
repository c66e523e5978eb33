"""Digests of routine security events: queued, then one message per destination and period.

Database and a webhook of the test's own; the digest's deliveries are sent in-process
here (tests/accounts/test_security_digest.py has the real worker and beat send them).
"""
from datetime import timedelta

import pytest
from django.utils import timezone

from jitad.notifications.models import Delivery, DigestEntry, Notification
from jitad.notifications.services import SECURITY, alert_raise, delivery_send, digests_send, named_destination
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.django_db
CHAT = named_destination("chat")


@pytest.fixture
def receiver():
    r = WebhookReceiver().start()
    yield r
    r.stop()


@pytest.fixture
def channels(settings, receiver):
    settings.JITAD_ALERT_URLS = [receiver.url]
    settings.JITAD_NOTIFY_DESTINATIONS = {"chat": [receiver.url_for("/chat")]}
    settings.JITAD_ALERT_DIGEST_MINUTES = 15
    return receiver


def _routine(person: str, kind: str = "enrolled an authenticator app") -> Notification | None:
    return alert_raise(event="mfa.changed", subject=f"{person} {kind}", body="b", digest_kind=kind, person=person,
                       object_type="user", object_id=person)


def test_routine_alerts_wait_then_go_as_one_digest_per_destination(channels):
    """GIVEN routine alerts for the security channel and entries for a named destination WHEN the
    period has not passed THEN nothing is recorded to send; WHEN it has THEN each destination gets
    exactly one digest counting its entries by kind and naming the people, and a second run sends nothing."""
    start = timezone.now()
    for i in range(5):
        assert _routine(f"p{i}") is None
    _routine("p0", "made a new set of backup codes")
    DigestEntry.objects.create(destination=CHAT, event="x", kind="joined", subject="s", person="q1")
    assert not Notification.objects.exists()
    assert DigestEntry.objects.filter(digest__isnull=True).count() == 7

    assert digests_send(now=start + timedelta(minutes=14)) == []
    notes = digests_send(now=start + timedelta(minutes=16))
    assert len(notes) == 2
    security = next(n for n in notes if n.deliveries.get().destination == SECURITY)
    chat = next(n for n in notes if n.deliveries.get().destination == CHAT)
    assert security.subject == "Digest: 6 routine security event(s)"
    assert "enrolled an authenticator app: 5\n  p0, p1, p2, p3, p4" in security.body
    assert "made a new set of backup codes: 1\n  p0" in security.body
    assert "joined: 1\n  q1" in chat.body and "p0" not in chat.body
    assert not DigestEntry.objects.filter(digest__isnull=True).exists()
    assert set(DigestEntry.objects.values_list("digest", flat=True)) == {security.pk, chat.pk}
    assert digests_send(now=start + timedelta(minutes=60)) == []

    for note in notes:
        delivery_send(delivery_id=note.deliveries.get().id)
    assert [m["title"] for m in channels.on("/alerts")] == [security.subject]
    assert [m["title"] for m in channels.on("/chat")] == [chat.subject]


def test_a_destination_hears_at_most_once_per_period(channels):
    """GIVEN a digest just went out WHEN a new routine alert follows THEN it waits a whole period of its own."""
    start = timezone.now()
    _routine("a")
    assert len(digests_send(now=start + timedelta(minutes=15, seconds=1))) == 1
    DigestEntry.objects.create(destination=SECURITY, event="mfa.changed", kind="k", subject="s", person="b",
                               created_at=start + timedelta(minutes=15, seconds=2))
    assert digests_send(now=start + timedelta(minutes=29)) == []
    assert len(digests_send(now=start + timedelta(minutes=31))) == 1


def test_with_digests_off_routine_alerts_go_at_once_and_waiting_ones_are_flushed(channels, settings):
    _routine("early")  # queued while digests were on
    settings.JITAD_ALERT_DIGEST_MINUTES = 0
    note = _routine("late")
    assert note is not None and note.deliveries.get().state == Delivery.State.PENDING
    (digest,) = digests_send()
    assert "early" in digest.body and "late" not in digest.body


def test_an_alert_that_is_not_routine_is_never_held(channels):
    note = alert_raise(event="account.blocked", subject="blocked", body="b", object_type="user", object_id="1")
    assert note is not None and note.deliveries.get().destination == SECURITY
    assert not DigestEntry.objects.exists()


def test_a_destination_without_urls_records_a_failed_digest(settings, channels):
    settings.JITAD_ALERT_URLS = []
    start = timezone.now()
    _routine("a")
    (note,) = digests_send(now=start + timedelta(minutes=16))
    assert note.deliveries.get().state == Delivery.State.FAILED
    assert DigestEntry.objects.get().digest_id == note.pk
