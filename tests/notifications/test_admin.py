"""The admin shows each notification with its deliveries, read-only; failed ones can be sent again."""
import re

import pytest
from django.contrib.auth.models import Permission, User

from jitad.notifications.models import Delivery, Notification

pytestmark = pytest.mark.django_db
DeliveryState = Delivery.State


def _note(subject: str, *states: str) -> Notification:
    note = Notification.objects.create(event="test", subject=subject, body="b")
    for i, state in enumerate(states):
        Delivery.objects.create(notification=note, channel="email", destination=f"u{i}", address=f"u{i}@example.org",
                                state=state, attempts=3 if state == DeliveryState.FAILED else 1,
                                last_error="attempt 3: SMTPServerDisconnected: gone" if state == DeliveryState.FAILED else "")
    return note


def _row(html: str, subject: str) -> str:
    return next(r for r in re.findall(r"<tr.*?</tr>", html, re.S) if subject in r)


def test_changelist_summarises_deliveries_even_when_filtered_on_them(verified_client):
    _note("mixed", DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.FAILED)
    _note("all sent", DeliveryState.SENT)
    client = verified_client(User.objects.create_superuser("root"))
    page = client.get("/admin/notifications/notification/").content.decode()
    assert "1 sent, 2 failed" in _row(page, "mixed")
    filtered = client.get("/admin/notifications/notification/?deliveries__state__exact=failed").content.decode()
    assert "1 sent, 2 failed" in _row(filtered, "mixed") and "all sent" not in filtered


def test_notification_page_lists_its_deliveries_read_only(verified_client):
    note = _note("mixed", DeliveryState.SENT, DeliveryState.FAILED)
    client = verified_client(User.objects.create_superuser("root"))
    page = client.get(f"/admin/notifications/notification/{note.id}/change/").content.decode()
    assert "u1@example.org" in page and "SMTPServerDisconnected: gone" in page
    assert 'name="deliveries-0-state"' not in page  # shown, not editable
    assert client.post(f"/admin/notifications/notification/{note.id}/change/", {}).status_code == 403


def test_failed_deliveries_can_be_sent_again_by_those_allowed(verified_client, django_capture_on_commit_callbacks):
    note = _note("mixed", DeliveryState.SENT, DeliveryState.FAILED)
    failed = note.deliveries.get(state=DeliveryState.FAILED)
    viewer = User.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_delivery"))
    client = verified_client(viewer)
    page = client.get("/admin/notifications/delivery/").content.decode()
    assert "send_again" not in page
    client = verified_client(User.objects.create_superuser("root"))
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post("/admin/notifications/delivery/", {
            "action": "send_again", "_selected_action": [d.id for d in note.deliveries.all()]})
    assert response.status_code == 302
    failed.refresh_from_db()
    assert (failed.state, failed.attempts) == (DeliveryState.PENDING, 0)
    assert note.deliveries.filter(state=DeliveryState.SENT).count() == 1 and len(queued) == 1


def test_digest_entries_show_waiting_or_their_digest(verified_client):
    from jitad.notifications.models import DigestEntry

    digest = _note("Digest: 1 routine security event(s)", DeliveryState.SENT)
    DigestEntry.objects.create(destination="JITAD_ALERT_URLS", event="mfa.changed", kind="made backup codes",
                               subject="ann made backup codes", person="ann")
    DigestEntry.objects.create(destination="JITAD_ALERT_URLS", event="mfa.changed", kind="created an API token",
                               subject="bo created an API token", person="bo", digest=digest)
    client = verified_client(User.objects.create_superuser("root"))
    page = client.get("/admin/notifications/digestentry/").content.decode()
    assert "waiting" in _row(page, "made backup codes")
    assert f"/admin/notifications/notification/{digest.id}/change/" in _row(page, "created an API token")
    entry = DigestEntry.objects.get(person="ann")
    assert client.post(f"/admin/notifications/digestentry/{entry.id}/change/", {}).status_code == 403
