"""Alerts are recorded, then delivered by the worker to a real webhook, with bounded retries.

The unit tests (database only) come first; the ``live`` tests start the session's Samba
DC and Celery worker, whose JITAD_ALERT_URLS points at the ``alert_sink`` receiver.
Retries wait 2**attempts seconds, so the timeouts below leave room for two of them.
"""
import socket
import uuid

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.elevation import services as elevation
from jitad.elevation.models import AccessRequest, Grant, Policy, Target
from jitad.notifications.models import Notification
from jitad.notifications.services import DeliveryFailed, alert_raise, notification_deliver
from tests.support.waiting import wait_for
from tests.support.webhook import WebhookReceiver

N = Notification.State


def _note(**fields) -> Notification:
    values = dict(event="test.alert", severity=Notification.Severity.WARNING, subject="subject", body="body")
    values.update(fields)
    return Notification.objects.create(**values)


@pytest.fixture
def receiver():
    """A webhook of this test's own (not the session's), for delivery without a worker."""
    r = WebhookReceiver().start()
    yield r
    r.stop()


# -- unit: the delivery service --------------------------------------------------------
@pytest.mark.django_db
def test_no_destinations_marks_failed_with_a_clear_error(settings):
    settings.JITAD_ALERT_URLS = []
    note = _note()
    notification_deliver(notification=note, final_attempt=False)  # nothing to retry: no raise
    note.refresh_from_db()
    assert note.state == N.FAILED
    assert note.attempts == 1
    assert "JITAD_ALERT_URLS" in note.last_error and "no alert destinations" in note.last_error
    assert note.sent_at is None


@pytest.mark.django_db
def test_deliver_posts_title_body_and_severity(settings, receiver):
    settings.JITAD_ALERT_URLS = [receiver.url]
    note = _note(subject="grant #7 failed", body="details here", severity=Notification.Severity.CRITICAL)
    notification_deliver(notification=note, final_attempt=False)
    note.refresh_from_db()
    assert (note.state, note.attempts, note.last_error) == (N.SENT, 1, "")
    assert note.sent_at is not None
    assert len(receiver.messages) == 1
    msg = receiver.messages[0]
    assert (msg["title"], msg["message"], msg["type"]) == ("grant #7 failed", "details here", "failure")


@pytest.mark.django_db
def test_refused_delivery_raises_until_the_final_attempt(settings, receiver):
    """GIVEN a destination answering 500 WHEN delivery is not the final attempt THEN it
    raises DeliveryFailed (so the task retries) and the note stays pending; WHEN it is the
    final attempt THEN the note is failed, with the attempt count in last_error."""
    settings.JITAD_ALERT_URLS = [receiver.url]
    receiver.fail_next = 2
    note = _note()
    with pytest.raises(DeliveryFailed):
        notification_deliver(notification=note, final_attempt=False)
    note.refresh_from_db()
    assert (note.state, note.attempts) == (N.PENDING, 1)
    assert "attempt 1" in note.last_error

    notification_deliver(notification=note, final_attempt=True)
    note.refresh_from_db()
    assert (note.state, note.attempts) == (N.FAILED, 2)
    assert "attempt 2" in note.last_error
    assert receiver.messages == []


@pytest.mark.django_db
def test_alert_raise_records_before_delivery():
    """Under the ``db`` fixture nothing commits, so the delivery task is never queued:
    what remains is the record alert_raise writes first."""
    note = alert_raise(event="test.raise", subject="s" * 300, body="b", object_type="grant", object_id=42)
    note.refresh_from_db()
    assert note.state == N.PENDING and note.attempts == 0
    assert len(note.subject) == 200
    assert (note.object_type, note.object_id) == ("grant", "42")


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


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

    alice = User.objects.create_user(username="alice")
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
    notification_deliver(notification=note, final_attempt=True)
    assert len(receiver.messages) == 1

    texts = [note.subject, note.body, grant.last_error, str(receiver.messages)]
    texts += [f"{e.reason} {e.data}" for e in AuditEvent.objects.all()]
    texts += [f"{r.justification} {r.ticket}" for r in AccessRequest.objects.all()]
    for text in texts:
        assert password not in text


# -- live: a real worker delivers to the session's webhook -----------------------------
def _raise(subject: str, body: str, severity=Notification.Severity.WARNING) -> Notification:
    with transaction.atomic():
        return alert_raise(event="test.delivery", subject=subject, body=body, severity=severity)


def _received(alert_sink, subject: str) -> list[dict]:
    return [m for m in list(alert_sink.messages) if m.get("title") == subject]


def _state(note_id: int, state: str, timeout: float = 30) -> Notification:
    return wait_for(
        lambda: Notification.objects.filter(id=note_id, state=state).first(),
        timeout=timeout,
        message=f"notification {note_id} to be {state} "
                f"(now {Notification.objects.filter(id=note_id).values_list('state', 'attempts', 'last_error').first()})",
    )


def test_alert_delivered_by_the_worker(live, alert_sink):
    """GIVEN a running worker WHEN an alert is raised in a transaction that commits THEN
    the webhook receives its title and body and the record is sent after one attempt."""
    tag = uuid.uuid4().hex[:8]
    subject, body = f"grant #1 could not be added [{tag}]", f"Last error: test {tag}"
    started = timezone.now()
    note = _raise(subject, body, severity=Notification.Severity.CRITICAL)
    wait_for(lambda: _received(alert_sink, subject), timeout=30, message="the alert at the webhook")
    (msg,) = _received(alert_sink, subject)
    assert msg["message"] == body
    assert msg["type"] == "failure"
    sent = _state(note.id, N.SENT)
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
    _state(_raise(later, "b").id, N.SENT)
    assert _received(alert_sink, later) and not _received(alert_sink, subject)


def test_alert_delivered_on_retry_after_a_refusal(live, alert_sink):
    """GIVEN the destination refuses the next request WHEN an alert is raised THEN the
    worker retries after a backoff and it is delivered once, on the second attempt."""
    subject = f"retry me {uuid.uuid4().hex[:8]}"
    alert_sink.fail_next = 1
    try:
        note = _raise(subject, "second time lucky")
        sent = _state(note.id, N.SENT, timeout=30)
    finally:
        alert_sink.fail_next = 0
    assert sent.attempts == 2
    assert sent.last_error == ""
    assert len(_received(alert_sink, subject)) == 1


def test_alert_fails_after_max_attempts(live, alert_sink, settings):
    """GIVEN a destination that always refuses WHEN an alert is raised THEN the worker
    gives up after JITAD_ALERT_MAX_ATTEMPTS attempts: failed, with the last error kept."""
    assert settings.JITAD_ALERT_MAX_ATTEMPTS == 3  # the worker gets the same value (tests/settings.py)
    subject = f"never arrives {uuid.uuid4().hex[:8]}"
    alert_sink.fail_next = 100
    try:
        note = _raise(subject, "the destination is down")
        failed = _state(note.id, N.FAILED, timeout=40)
    finally:
        alert_sink.fail_next = 0
    assert failed.attempts == 3
    assert "attempt 3" in failed.last_error and "refused" in failed.last_error
    assert failed.sent_at is None
    assert not _received(alert_sink, subject)
