"""The engine's pages in the admin: processes, leases and alert conditions are visible, and read-only."""
from datetime import timedelta

import pytest
from django.utils import timezone

from jitad.engine.models import Heartbeat, Lease
from jitad.notifications.models import AlertCondition


@pytest.mark.django_db
def test_staff_see_processes_leases_and_conditions(verified_client, django_user_model):
    admin_user = django_user_model.objects.create_superuser("root-admin", password="x" * 20)
    client = verified_client(admin_user)
    now = timezone.now()
    Heartbeat.objects.create(node="engine@a", role="worker", hostname="a", pid=1, started_at=now, seen_at=now)
    Heartbeat.objects.create(node="engine@b", role="worker", hostname="b", pid=2, started_at=now,
                             seen_at=now - timedelta(minutes=5))
    Lease.objects.create(name="scheduler", holder="scheduler@a:9", acquired_at=now, expires_at=now + timedelta(seconds=5))
    AlertCondition.objects.create(key="directory.unreachable", event="directory.unreachable", subject="No DC answers",
                                  opened_at=now, last_alert_at=now)
    page = client.get("/admin/engine/heartbeat/").content.decode()
    assert "engine@a" in page and "alive" in page and "dead (silent)" in page
    assert "scheduler@a:9" in client.get("/admin/engine/lease/").content.decode()
    assert "No DC answers" in client.get("/admin/notifications/alertcondition/").content.decode()
    assert client.get("/admin/engine/heartbeat/add/").status_code == 403
