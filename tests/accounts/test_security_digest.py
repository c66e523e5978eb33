"""Onboarding in bulk: routine MFA alerts go out as one digest, a privileged person's at once.

Real parts: the session's worker (beat included) sends the digest and the alerts to the
session's webhook; enrolments go through the accounts services with real TOTP codes.
"""
import uuid
from datetime import timedelta

from django.contrib.auth.models import Group
from django.utils import timezone

from jitad.accounts.services import totp_enrol_begin, totp_enrol_confirm
from jitad.audit.models import AuditEvent
from jitad.breakglass.models import SealedAccount
from jitad.elevation.models import Policy
from jitad.notifications.models import Delivery, DigestEntry, Notification
from jitad.notifications.services import SECURITY, digests_send
from tests.support.mfa import totp_code
from tests.support.waiting import wait_for

PEOPLE = 200


def _enrol(user) -> None:
    device = totp_enrol_begin(user=user)
    assert totp_enrol_confirm(user=user, device=device, code=totp_code(device))


def _ours(alert_sink, tag: str) -> list[dict]:
    """What reached the security channel about this test's people (the watchdog speaks there too)."""
    return [m for m in alert_sink.on("/alerts") if tag in m["title"] or m["title"].startswith("Digest")]


def _sent(note: Notification) -> bool:
    return note.deliveries.filter(state=Delivery.State.SENT).exists()


def test_bulk_enrolment_is_one_digest_and_an_approvers_goes_at_once(live, alert_sink, django_user_model, settings):
    """GIVEN digests every 15 minutes, an elevation approver and a break-glass responder WHEN 200
    people and those two enrol an authenticator app THEN the two alerts are delivered at once,
    naming their roles; the 200 wait (each one audited); and once the period has passed the
    worker's beat sends one digest to the security channel that counts them and names them."""
    assert settings.JITAD_ALERT_DIGEST_MINUTES == 15  # the worker runs with the same default
    tag = uuid.uuid4().hex[:6]
    approvers = Group.objects.create(name=f"approvers-{tag}")
    Policy.objects.create(name=f"p-{tag}", approver_groups=[approvers.name])
    approver = django_user_model.objects.create_user(f"appr{tag}")
    approver.groups.add(approvers)
    responders = Group.objects.create(name=f"responders-{tag}")
    # Sealed already: the break-glass sweep leaves it alone (no AD account behind it).
    SealedAccount.objects.create(name=f"bg{tag}", user_dn=f"CN=bg{tag},CN=Users,DC=jitad,DC=test",
                                 state=SealedAccount.State.SEALED, responder_groups=[responders.name])
    responder = django_user_model.objects.create_user(f"resp{tag}")
    responder.groups.add(responders)
    people = [django_user_model.objects.create_user(f"new{tag}{i:03d}") for i in range(PEOPLE)]

    started = timezone.now()
    for user in [people[0], approver, *people[1:], responder]:
        _enrol(user)

    at_once = {n.subject: n for n in Notification.objects.filter(event="mfa.changed")}
    assert set(at_once) == {f"{approver.username} enrolled an authenticator app (their first MFA device)",
                            f"{responder.username} enrolled an authenticator app (their first MFA device)"}
    assert "elevation approver" in at_once[next(s for s in at_once if approver.username in s)].body
    assert "break-glass responder" in at_once[next(s for s in at_once if responder.username in s)].body
    for note in at_once.values():
        wait_for(lambda note=note: _sent(note), timeout=30, message=f"{note.subject} delivered")
    assert sorted(m["title"] for m in _ours(alert_sink, tag)) == sorted(at_once)
    assert AuditEvent.objects.filter(action="mfa.enrolled", at__gte=started).count() == PEOPLE + 2
    assert DigestEntry.objects.filter(digest__isnull=True, destination=SECURITY).count() == PEOPLE

    # The worker's beat checks every second and finds nothing due for 15 minutes: pass them.
    DigestEntry.objects.update(created_at=timezone.now() - timedelta(minutes=16))
    digest = wait_for(lambda: Notification.objects.filter(event="alert.digest").first(), timeout=30,
                      message="the digest recorded by the worker's beat")
    wait_for(lambda: _sent(digest), timeout=30, message="the digest delivered")
    (message,) = [m for m in _ours(alert_sink, tag) if m["title"] not in at_once]
    assert message["title"] == f"Digest: {PEOPLE} routine security event(s)"
    assert f"enrolled an authenticator app: {PEOPLE}\n" in message["message"]
    assert all(p.username in message["message"] for p in people)
    assert approver.username not in message["message"] and responder.username not in message["message"]
    assert list(digest.deliveries.values_list("destination", flat=True)) == [SECURITY]
    assert not DigestEntry.objects.filter(digest__isnull=True).exists()
    # Every entry belongs to that digest: however often beat looks again, there is nothing left to send.
    assert digests_send(now=timezone.now() + timedelta(days=1)) == []
    assert Notification.objects.filter(event="alert.digest").count() == 1
