"""The notification service: one delivery per recipient or URL, sent after commit, retried, recorded.

The unit tests (database only) call the delivery service in-process: e-mail goes to
Django's locmem outbox, apprise deliveries to a webhook receiver of the test's own. The
``live`` tests start the session's worker, whose destinations all point at the
``alert_sink`` receiver (tests/support/destinations.py) and whose mail goes to a real
SMTP server on 127.0.0.1. Worker timings come from tests/settings.py: 3 attempts,
backoff from 0.5 s, a 3 s limit per attempt, a lost-message check every second.
"""
import socket
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.db import transaction
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.elevation import services as elevation
from jitad.elevation.models import AccessRequest, Grant, Policy, Target
from jitad.notifications.models import Delivery, Notification
from jitad.notifications.services import (
    SECURITY,
    alert_raise,
    deliveries_resend,
    deliveries_retry,
    delivery_send,
    named_destination,
    notification_create,
)
from tests.support.waiting import wait_for
from tests.support.webhook import WebhookReceiver

DeliveryState = Delivery.State


@pytest.fixture
def receiver():
    """A webhook of this test's own (not the session's), for delivery without a worker."""
    r = WebhookReceiver().start()
    yield r
    r.stop()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _send_until_done(delivery: Delivery) -> Delivery:
    """Drive one delivery through all its attempts in-process, as the worker's retries would."""
    for _ in range(10):
        delivery_send(delivery_id=delivery.id)
        delivery.refresh_from_db()
        if delivery.state != DeliveryState.PENDING:
            return delivery
        Delivery.objects.filter(id=delivery.id).update(next_attempt_at=timezone.now())  # the backoff has passed
    raise AssertionError("delivery never finished")


# -- unit: recording ---------------------------------------------------------------------
@pytest.mark.django_db
def test_alert_gets_one_delivery_per_url_of_the_security_channel(settings, receiver):
    settings.JITAD_ALERT_URLS = [receiver.url, receiver.url_for("/second")]
    note = alert_raise(event="test.raise", subject="s" * 300, body="b", object_type="grant", object_id=42)
    assert len(note.subject) == 200
    assert (note.object_type, note.object_id) == ("grant", "42")
    rows = list(note.deliveries.values_list("channel", "destination", "position", "address", "state", "attempts"))
    port = receiver.port
    assert rows == [
        ("apprise", SECURITY, 0, f"json://127.0.0.1:{port}/a...s", DeliveryState.PENDING, 0),
        ("apprise", SECURITY, 1, f"json://127.0.0.1:{port}/s...d", DeliveryState.PENDING, 0),
    ]
    assert receiver.messages == []  # nothing is sent before commit


@pytest.mark.django_db
def test_unset_or_unknown_destinations_are_recorded_failed(settings):
    """GIVEN no security channel, an unknown named destination and a URL apprise cannot
    use WHEN a message is recorded THEN each shows as a failed delivery saying why."""
    settings.JITAD_ALERT_URLS = []
    settings.JITAD_NOTIFY_DESTINATIONS = {"typo": ["nonsense-without-scheme"]}
    note = notification_create(event="test", subject="s", body="b",
                               destinations=[SECURITY, named_destination("missing"), named_destination("typo")])
    errors = dict(note.deliveries.values_list("destination", "last_error"))
    assert errors == {
        "JITAD_ALERT_URLS": "JITAD_ALERT_URLS is not set: no URL to send to",
        "JITAD_NOTIFY_MISSING": "JITAD_NOTIFY_MISSING is not set: no URL to send to",
        "JITAD_NOTIFY_TYPO": "entry 1 of JITAD_NOTIFY_TYPO is not a URL jitad can send to",
    }
    assert set(note.deliveries.values_list("state", flat=True)) == {DeliveryState.FAILED}


@pytest.mark.django_db
def test_people_without_email_get_no_delivery():
    with_mail = User.objects.create_user("ann", email="ann@example.org")
    twin = User.objects.create_user("ann2", email="ANN@example.org")  # same mailbox: one e-mail
    without = User.objects.create_user("bo")
    note = notification_create(event="test", subject="s", body="b", people=[with_mail, twin, without])
    assert list(note.deliveries.values_list("channel", "destination", "address")) == [("email", "ann", "ann@example.org")]
    assert notification_create(event="test", subject="s", body="b", people=[without]) is None  # reaches nobody: no row
    assert Notification.objects.count() == 1


# -- unit: sending ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_apprise_delivery_posts_title_body_link_and_severity(settings, receiver):
    settings.JITAD_ALERT_URLS = [receiver.url]
    note = notification_create(event="test", subject="grant #7 failed", body="details here",
                               link="https://jitad.example.test/admin/x/", severity=Notification.Severity.CRITICAL,
                               destinations=[SECURITY])
    d = _send_until_done(note.deliveries.get())
    assert (d.state, d.attempts, d.last_error, d.next_attempt_at) == (DeliveryState.SENT, 1, "", None)
    assert d.sent_at is not None
    (msg,) = receiver.messages
    assert (msg["title"], msg["message"], msg["type"]) == (
        "grant #7 failed", "details here\n\nhttps://jitad.example.test/admin/x/", "failure")


@pytest.mark.django_db
def test_email_delivery_goes_through_djangos_mail_backend():
    person = User.objects.create_user("ann", email="ann@example.org")
    note = notification_create(event="test", subject="Active: admin on SRV01", body="You are admin now.",
                               link="https://jitad.example.test/access/#grant-1", people=[person])
    d = _send_until_done(note.deliveries.get())
    assert d.state == DeliveryState.SENT
    (m,) = mail.outbox
    assert m.to == ["ann@example.org"]
    assert m.subject == "[jitad] Active: admin on SRV01"
    assert m.body == "You are admin now.\n\nhttps://jitad.example.test/access/#grant-1"


@pytest.mark.django_db
def test_email_scheme_destination_uses_the_same_mail_settings(settings):
    settings.JITAD_NOTIFY_DESTINATIONS = {"team-mail": ["email://team@example.org"]}
    note = notification_create(event="test", subject="hello", body="b", destinations=[named_destination("team-mail")])
    d = note.deliveries.get()
    assert (d.channel, d.destination, d.address) == ("apprise", "JITAD_NOTIFY_TEAM_MAIL", "email://team@example.org")
    assert _send_until_done(d).state == DeliveryState.SENT
    assert [m.to for m in mail.outbox] == [["team@example.org"]]


@pytest.mark.django_db
def test_refused_delivery_is_retried_with_backoff_then_failed(settings, receiver):
    """GIVEN a destination answering 500 WHEN a delivery is attempted THEN it stays
    pending, due again after a backoff, with the error; after JITAD_DELIVERY_MAX_ATTEMPTS
    it is failed, keeping the last error."""
    settings.JITAD_ALERT_URLS = [receiver.url]
    settings.JITAD_DELIVERY_MAX_ATTEMPTS = 3
    settings.JITAD_DELIVERY_RETRY_BASE_SECONDS = 60
    settings.JITAD_DELIVERY_RETRY_MAX_SECONDS = 600
    receiver.fail_next = 100
    d = alert_raise(event="test", subject="s", body="b").deliveries.get()
    before = timezone.now()
    delivery_send(delivery_id=d.id)
    d.refresh_from_db()
    assert (d.state, d.attempts) == (DeliveryState.PENDING, 1)
    assert d.last_error.startswith("attempt 1: ") and "error=500" in d.last_error
    assert before + timedelta(seconds=30) <= d.next_attempt_at <= timezone.now() + timedelta(seconds=60)
    delivery_send(delivery_id=d.id)  # not due yet: nothing happens
    d.refresh_from_db()
    assert d.attempts == 1 and len(receiver.hits) == 1

    d = _send_until_done(d)
    assert (d.state, d.attempts, d.sent_at, d.next_attempt_at) == (DeliveryState.FAILED, 3, None, None)
    assert d.last_error.startswith("attempt 3: ")
    assert len(receiver.hits) == 3 and receiver.messages == []


@pytest.mark.django_db
def test_unreachable_destination_records_a_useful_error(settings):
    settings.JITAD_ALERT_URLS = [f"json://127.0.0.1:{_closed_port()}/hook"]
    settings.JITAD_DELIVERY_MAX_ATTEMPTS = 1
    d = _send_until_done(alert_raise(event="test", subject="s", body="b").deliveries.get())
    assert d.state == DeliveryState.FAILED
    assert "Connection error" in d.last_error and "127.0.0.1" in d.last_error


@pytest.mark.django_db
def test_a_changed_destination_is_never_sent_to_a_different_url(settings, receiver):
    """GIVEN a delivery recorded for one URL WHEN the variable now holds another THEN it
    fails, saying so, rather than sending to whatever sits at that position now."""
    settings.JITAD_ALERT_URLS = [receiver.url]
    d = alert_raise(event="test", subject="s", body="b").deliveries.get()
    settings.JITAD_ALERT_URLS = [receiver.url_for("/elsewhere")]
    d = _send_until_done(d)
    assert (d.state, d.last_error) == (DeliveryState.FAILED, "attempt 1: JITAD_ALERT_URLS no longer holds this URL")
    assert receiver.hits == []


@pytest.mark.django_db
def test_a_second_message_for_the_same_delivery_sends_nothing(settings, receiver):
    settings.JITAD_ALERT_URLS = [receiver.url]
    d = alert_raise(event="test", subject="s", body="b").deliveries.get()
    delivery_send(delivery_id=d.id)
    delivery_send(delivery_id=d.id)
    d.refresh_from_db()
    assert (d.state, d.attempts, len(receiver.messages)) == (DeliveryState.SENT, 1, 1)


@pytest.mark.django_db
def test_periodic_check_fails_a_delivery_whose_last_attempt_never_finished(settings, django_capture_on_commit_callbacks):
    """GIVEN a pending delivery that used its last attempt and never reported back (its
    worker died) WHEN the periodic check runs THEN it is failed, not sent a fourth time."""
    settings.JITAD_DELIVERY_MAX_ATTEMPTS = 3
    note = Notification.objects.create(event="test", subject="s", body="b")
    stale = timezone.now() - timedelta(hours=1)
    d = Delivery.objects.create(notification=note, channel="email", destination="ann", address="ann@example.org",
                                attempts=3, next_attempt_at=stale, last_error="attempt 2: refused")
    fresh = Delivery.objects.create(notification=note, channel="email", destination="bo", address="bo@example.org",
                                    next_attempt_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert deliveries_resend() == 0
    d.refresh_from_db()
    assert d.state == DeliveryState.FAILED and "never finished" in d.last_error
    assert Delivery.objects.get(id=fresh.id).state == DeliveryState.PENDING  # not overdue: its message is on its way
    assert queued == []


@pytest.mark.django_db
def test_periodic_check_queues_a_lost_delivery_once_not_on_every_run(settings, django_capture_on_commit_callbacks):
    """GIVEN 100 pending deliveries whose messages were lost WHEN the periodic check runs
    five times, an interval apart THEN the first run claims and queues them (one callback
    after its commit), each claim waiting for its message past an attempt's time limit; the
    next four queue nothing. The queued message (carrying the claim) sends its delivery; a
    stray older message for it (another token) finds nothing to do."""
    interval = settings.JITAD_DELIVERY_CHECK_INTERVAL
    note = Notification.objects.create(event="test", subject="s", body="b")
    lost = timezone.now() - timedelta(seconds=3 * interval)
    Delivery.objects.bulk_create([
        Delivery(notification=note, channel="email", destination=f"p{i}", address=f"p{i}@example.org",
                 next_attempt_at=lost) for i in range(100)])
    start = timezone.now()
    runs = []
    for k in range(5):
        with django_capture_on_commit_callbacks(execute=False) as queued:
            count = deliveries_resend(now=start + timedelta(seconds=k * interval))
        runs.append((count, len(queued)))
    assert runs == [(100, 1)] + [(0, 0)] * 4
    limit = settings.JITAD_DELIVERY_TIMEOUT
    for lease in Delivery.objects.values_list("lease_until", flat=True):
        assert lease > start + timedelta(seconds=limit)
    assert Delivery.objects.values("claim_token").distinct().count() == 1

    d = Delivery.objects.first()
    delivery_send(delivery_id=d.id, token=uuid.uuid4())  # an older message for it
    assert Delivery.objects.get(id=d.id).attempts == 0
    delivery_send(delivery_id=d.id, token=d.claim_token)  # the check's message
    d.refresh_from_db()
    assert (d.state, d.attempts, d.claim_token) == (DeliveryState.SENT, 1, None)
    assert [m.to for m in mail.outbox] == [[d.address]]


@pytest.mark.django_db
def test_operator_can_send_failed_deliveries_again(django_capture_on_commit_callbacks):
    note = Notification.objects.create(event="test", subject="s", body="b")
    d = Delivery.objects.create(notification=note, channel="email", destination="ann", address="ann@example.org",
                                attempts=3, state=DeliveryState.FAILED, last_error="attempt 3: refused")
    sent = Delivery.objects.create(notification=note, channel="email", destination="bo", address="bo@example.org",
                                   state=DeliveryState.SENT)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert deliveries_retry(delivery_ids=[d.id, sent.id]) == 1
    assert len(queued) == 1
    d = _send_until_done(d)
    assert (d.state, d.attempts) == (DeliveryState.SENT, 1)
    assert Delivery.objects.get(id=sent.id).state == DeliveryState.SENT


@pytest.mark.django_db
def test_failed_deliveries_are_sent_again_a_chunk_at_a_time(monkeypatch, django_capture_on_commit_callbacks):
    """GIVEN five failed deliveries and a sent one, retried with chunks of two WHEN an operator sends them again
    THEN the five are pending with a fresh count, in three chunks with a claim and a message each (a mass
    expiry's notices are 100,000 ids, and a statement takes 65,535 parameters), and the sent one is untouched."""
    from jitad.notifications.services import delivery as delivery_module

    monkeypatch.setattr(delivery_module, "RETRY_CHUNK", 2)
    note = Notification.objects.create(event="test", subject="s", body="b")
    failed = [Delivery.objects.create(notification=note, channel="email", destination=f"p{i}", address=f"p{i}@example.org",
                                      attempts=3, state=DeliveryState.FAILED, last_error="attempt 3: refused").id
              for i in range(5)]
    sent = Delivery.objects.create(notification=note, channel="email", destination="bo", address="bo@example.org",
                                   state=DeliveryState.SENT)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert deliveries_retry(delivery_ids=[*failed, sent.id]) == 5
    assert len(queued) == 3
    rows = Delivery.objects.filter(id__in=failed)
    assert {(d.state, d.attempts) for d in rows} == {(DeliveryState.PENDING, 0)}
    assert len({d.claim_token for d in rows}) == 3 and None not in {d.claim_token for d in rows}
    assert Delivery.objects.get(id=sent.id).state == DeliveryState.SENT


@pytest.mark.django_db
def test_grant_failure_alert_never_contains_the_bind_password(settings, tmp_path, receiver):
    """GIVEN jitad configured with a bind password and no reachable DC WHEN applying a
    grant fails for good THEN the grant_failed alert (as recorded and as delivered), the
    grant's last_error and the audit trail describe the failure without the password."""
    password = "Bind-Secret-" + uuid.uuid4().hex
    ca = tmp_path / "ca.pem"
    ca.write_text("placeholder: the connection fails before TLS\n")
    settings.JITAD_LDAP_URLS = [f"ldaps://127.0.0.1:{_closed_port()}"]
    settings.JITAD_LDAP_CA_FILE = str(ca)
    settings.JITAD_LDAP_BIND_DN = "CN=svc-jitad,CN=Users,DC=jitad,DC=test"
    settings.JITAD_LDAP_BIND_PASSWORD = password
    settings.JITAD_LDAP_BASE_DN = "DC=jitad,DC=test"
    settings.JITAD_LDAP_CONNECT_TIMEOUT = 2
    settings.JITAD_RETRY_MAX_ATTEMPTS = 1
    settings.JITAD_ALERT_URLS = [receiver.url]

    alice = User.objects.create_user(username="alice", email="alice@example.org")
    srv = Target.objects.create(name="SRV01", group_dn="CN=JIT-SRV01-Admins,OU=JIT,DC=jitad,DC=test")
    p = Policy.objects.create(name="auto", approval_mode=Policy.ApprovalMode.AUTO, eligible_users=["alice"],
                              require_justification=False)
    p.targets.add(srv)
    req = elevation.request_create(requester=alice, target=srv, duration_minutes=30)
    grant = Grant.objects.get(request=req)
    elevation.grant_apply_execute(grant_id=grant.id, token=grant.claim_token)

    grant.refresh_from_db()
    assert grant.state == Grant.State.GRANT_FAILED
    assert "DirectoryUnavailable" in grant.last_error
    note = Notification.objects.get(event="grant.grant_failed")
    assert "alice" in note.subject and "SRV01" in note.subject
    assert "DirectoryUnavailable" in note.body  # the error text does reach the alert
    assert _send_until_done(note.deliveries.get()).state == DeliveryState.SENT
    assert len(receiver.messages) == 1
    told = Notification.objects.get(event="grant.not_applied")  # and the requester learns it failed
    assert list(told.deliveries.values_list("address", flat=True)) == ["alice@example.org"]

    texts = [note.subject, note.body, told.body, grant.last_error, str(receiver.messages)]
    texts += [f"{e.reason} {e.data}" for e in AuditEvent.objects.all()]
    texts += [f"{r.justification} {r.ticket}" for r in AccessRequest.objects.all()]
    for text in texts:
        assert password not in text


# -- live: a real worker delivers ------------------------------------------------------------
def _raise(subject: str, body: str, severity=Notification.Severity.WARNING) -> Notification:
    with transaction.atomic():
        return alert_raise(event="test.delivery", subject=subject, body=body, severity=severity)


def _received(alert_sink, subject: str) -> list[dict]:
    return [m for m in list(alert_sink.messages) if m.get("title") == subject]


def _state(delivery_id: int, state: str, timeout: float = 30) -> Delivery:
    return wait_for(
        lambda: Delivery.objects.filter(id=delivery_id, state=state).first(),
        timeout=timeout,
        message=f"delivery {delivery_id} to be {state} "
                f"(now {Delivery.objects.filter(id=delivery_id).values_list('state', 'attempts', 'last_error').first()})",
    )


def test_alert_delivered_by_the_worker(live, alert_sink):
    """GIVEN a running worker WHEN an alert is raised in a transaction that commits THEN
    the webhook receives its title and body and the delivery is sent after one attempt."""
    tag = uuid.uuid4().hex[:8]
    subject, body = f"grant #1 could not be added [{tag}]", f"Last error: test {tag}"
    started = timezone.now()
    note = _raise(subject, body, severity=Notification.Severity.CRITICAL)
    wait_for(lambda: _received(alert_sink, subject), timeout=30, message="the alert at the webhook")
    (msg,) = _received(alert_sink, subject)
    assert msg["message"] == body
    assert msg["type"] == "failure"
    sent = _state(note.deliveries.get().id, DeliveryState.SENT)
    assert sent.attempts == 1
    assert sent.last_error == ""
    assert sent.sent_at >= started


def test_alert_not_sent_when_the_transaction_rolls_back(live, alert_sink):
    subject = f"rolled back {uuid.uuid4().hex[:8]}"
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            alert_raise(event="test.delivery", subject=subject, body="never")
            raise RuntimeError("the change failed")
    assert not Notification.objects.filter(subject=subject).exists()
    # a later alert is delivered, so the worker had every chance to send the first one
    later = f"after rollback {uuid.uuid4().hex[:8]}"
    _state(_raise(later, "b").deliveries.get().id, DeliveryState.SENT)
    assert _received(alert_sink, later) and not _received(alert_sink, subject)


def test_alert_delivered_on_retry_after_a_refusal(live, alert_sink):
    """GIVEN the destination refuses the next request WHEN an alert is raised THEN the
    worker retries after a backoff and it is delivered once, on the second attempt."""
    subject = f"retry me {uuid.uuid4().hex[:8]}"
    alert_sink.fail_titles[subject] = 1
    sent = _state(_raise(subject, "second time lucky").deliveries.get().id, DeliveryState.SENT)
    assert alert_sink.fail_titles[subject] == 0  # the first request was the one refused
    assert sent.attempts == 2
    assert sent.last_error == ""
    assert len(_received(alert_sink, subject)) == 1


def test_failing_destination_is_retried_then_failed_without_holding_up_the_others(live, alert_sink):
    """GIVEN one message for a destination that always answers 500, one that never
    answers, and a working one WHEN it is recorded THEN the working one is sent while the
    others are still being tried; those end failed after 3 attempts each, with the error
    (HTTP 500, no answer within the time limit)."""
    tag = uuid.uuid4().hex[:8]
    with transaction.atomic():
        note = notification_create(event="test.delivery", subject=f"fan out {tag}", body="b", destinations=[
            named_destination("broken"), named_destination("slow"), named_destination("chat")])
    by = {d.destination: d for d in note.deliveries.all()}
    chat = _state(by["JITAD_NOTIFY_CHAT"].id, DeliveryState.SENT)
    assert Delivery.objects.get(id=by["JITAD_NOTIFY_SLOW"].id).state == DeliveryState.PENDING  # still on its first attempts
    assert [m["title"] for m in alert_sink.on("/chat")] == [f"fan out {tag}"]
    assert chat.attempts == 1

    broken = _state(by["JITAD_NOTIFY_BROKEN"].id, DeliveryState.FAILED, timeout=40)
    assert broken.attempts == 3
    assert broken.last_error.startswith("attempt 3: ") and "error=500" in broken.last_error
    slow = _state(by["JITAD_NOTIFY_SLOW"].id, DeliveryState.FAILED, timeout=60)
    assert slow.attempts == 3
    assert "no answer within 3 s" in slow.last_error
    assert alert_sink.hits.count("/slow") == 3


def test_lost_message_is_sent_by_the_periodic_check(live, alert_sink):
    """GIVEN a pending delivery whose task message never reached the broker WHEN beat's
    periodic check runs THEN it is queued again and sent."""
    subject = f"lost {uuid.uuid4().hex[:8]}"
    note = Notification.objects.create(event="test.delivery", subject=subject, body="b")
    d = Delivery.objects.create(notification=note, channel="apprise", destination=SECURITY, position=0,
                                address=f"json://127.0.0.1:{alert_sink.port}/a...s", next_attempt_at=timezone.now())
    sent = _state(d.id, DeliveryState.SENT, timeout=30)
    assert sent.attempts == 1
    assert len(_received(alert_sink, subject)) == 1


def test_email_reaches_a_real_smtp_server_through_the_worker(live, smtp_sink):
    """GIVEN the worker's JITAD_EMAIL_URL pointing at an SMTP server on 127.0.0.1 WHEN a
    message for a person and for an email:// destination commits THEN both arrive there
    as real mail, with subject, body and link."""
    person = User.objects.create_user("smtp-ann", email="ann@example.org")
    tag = uuid.uuid4().hex[:8]
    with transaction.atomic():
        note = notification_create(event="test.delivery", subject=f"Active: admin on SRV01 [{tag}]",
                                   body="You are admin now.", link="http://localhost:8000/access/#grant-1",
                                   people=[person], destinations=[named_destination("team-mail")])
    for d in note.deliveries.all():
        _state(d.id, DeliveryState.SENT)
    (m,) = smtp_sink.to("ann@example.org")
    assert m["Subject"] == f"[jitad] Active: admin on SRV01 [{tag}]"
    assert m["To"] == "ann@example.org"
    assert "http://localhost:8000/access/#grant-1" in m.get_content()
    (team,) = smtp_sink.to("team@example.org")
    assert team["Subject"] == m["Subject"]
