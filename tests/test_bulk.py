"""Inserting many rows at once (jitad.bulk): COPY on PostgreSQL, the rows as they were written, with their ids."""
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jitad import bulk
from jitad.audit.models import AuditEvent
from jitad.audit.services import AuditEntry, audit_record_many, audit_verify
from jitad.elevation.models import Target
from jitad.notifications.models import Delivery, Notification

# What COPY's text format escapes (tab, newline, backslash, carriage return) and what it must leave alone.
AWKWARD = ["tab\there", "two\nlines", "back\\slash \\N \\.", "cr\rlf", "quote ' \" `", "ünïcödé ✓ 管理者", "", " "]


def _notes(n: int, tag: str) -> list[Notification]:
    now = timezone.now()
    return [Notification(created_at=now - timedelta(seconds=i), event="test.bulk", subject=f"{tag} {i}",
                         body=AWKWARD[i % len(AWKWARD)], object_type="grant", object_id=str(i)) for i in range(n)]


@pytest.mark.django_db
def test_rows_come_back_saved_with_ids_and_read_back_exactly_as_written():
    notes = bulk.insert_many(Notification, _notes(60, "a"))
    assert all(n.pk is not None and not n._state.adding for n in notes)
    assert len({n.pk for n in notes}) == 60
    stored = Notification.objects.in_bulk([n.pk for n in notes])
    for n in notes:
        got = stored[n.pk]
        assert (got.subject, got.body, got.created_at, got.severity, got.link) == (n.subject, n.body, n.created_at,
                                                                                  n.severity, "")
    # Rows that point at them (a delivery's notification), given their ids after they were built, and a null.
    token = uuid.uuid4()
    deliveries = [Delivery(notification=n, channel=Delivery.Channel.EMAIL, address=f"p{i}@example.test",
                           claim_token=token if i % 2 else None) for i, n in enumerate(notes)]
    bulk.insert_many(Delivery, deliveries)
    assert Delivery.objects.filter(notification__subject__startswith="a ").count() == 60
    assert Delivery.objects.filter(claim_token=token).count() == 30
    assert Delivery.objects.get(pk=deliveries[3].pk).notification_id == notes[3].pk
    # The table's own sequence moved past them: the next row created the ordinary way gets a new id.
    later = Notification.objects.create(event="test.bulk", subject="later", body="")
    assert later.pk not in stored


@pytest.mark.django_db
def test_on_postgresql_many_rows_go_by_copy_and_few_by_one_insert():
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's; elsewhere insert_many is bulk_create")
    with CaptureQueriesContext(connection) as many:
        bulk.insert_many(Notification, _notes(bulk.COPY_MIN, "many"))
    sql = [q["sql"] for q in many.captured_queries]
    assert not any(s.lstrip().upper().startswith("INSERT") for s in sql), sql
    assert any("nextval" in s for s in sql)
    assert Notification.objects.filter(subject__startswith="many ").count() == bulk.COPY_MIN
    with CaptureQueriesContext(connection) as few:
        bulk.insert_many(Notification, _notes(bulk.COPY_MIN - 1, "few"))
    assert [q["sql"].lstrip()[:6].upper() for q in few.captured_queries] == ["INSERT"]


@pytest.mark.django_db
def test_audit_entries_written_in_bulk_verify_with_their_data_intact():
    entries = [AuditEntry(actor="system:test", action="test.bulk", object_type="grant", object_id=str(i),
                          before="active", after="revoked", reason=AWKWARD[i % len(AWKWARD)],
                          data={"user": AWKWARD[(i + 1) % len(AWKWARD)], "n": i, "nested": {"ok": True, "x": None},
                                "list": [1, "two", 3.5]})
               for i in range(50)]
    events = audit_record_many(entries)
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + 50))
    assert audit_verify() == []
    stored = AuditEvent.objects.in_bulk([e.pk for e in events])
    assert [stored[e.pk].data for e in events] == [e.data for e in entries]
    assert [stored[e.pk].reason for e in events] == [e.reason for e in entries]


@pytest.mark.django_db
def test_fields_set_on_save_and_json_and_naive_datetimes_are_prepared_as_django_would():
    """GIVEN targets (an ``auto_now`` time, JSON lists, defaults) and notices with a naive datetime WHEN they are
    inserted in bulk THEN the time is set as a save sets it, the JSON reads back as written, and the naive
    datetime is stored as Django stores it (in the current time zone, here UTC)."""
    before = timezone.now()
    targets = bulk.insert_many(Target, [Target(name=f"BULK{i:02d}", group_dn=f"CN=JIT-BULK{i:02d},OU=JIT,DC=x",
                                               allowed_admins=[f"S-1-5-21-{i}", "ü"]) for i in range(25)])
    stored = Target.objects.in_bulk([t.pk for t in targets])
    assert all(stored[t.pk].updated_at >= before for t in targets)
    assert [stored[t.pk].allowed_admins for t in targets] == [[f"S-1-5-21-{i}", "ü"] for i in range(25)]
    naive = timezone.now().replace(tzinfo=None, microsecond=0)
    notes = _notes(25, "naive")
    for n in notes:
        n.created_at = naive
    with pytest.warns(RuntimeWarning):  # Django's own warning for a naive datetime, as on an INSERT
        bulk.insert_many(Notification, notes)
    assert {n.created_at for n in Notification.objects.filter(subject__startswith="naive ")} == {
        timezone.make_aware(naive, timezone.get_current_timezone())}


@pytest.mark.django_db
def test_a_role_with_no_right_on_the_sequence_inserts_instead(monkeypatch):
    """GIVEN jitad running as a role with rights on the table only (another role ran migrate) WHEN many rows are
    inserted THEN they go by INSERT (which fills the identity itself), not by COPY after nextval(), which that
    role may not call."""
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's; elsewhere insert_many is bulk_create")
    role = f"jitad_bulk_{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(bulk, "_may", {})
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} NOLOGIN")  # rolled back with the test's transaction
        cursor.execute(f"GRANT SELECT, INSERT ON notifications_notification TO {role}")
        cursor.execute(f"SET LOCAL ROLE {role}")
    try:
        with CaptureQueriesContext(connection) as q:
            notes = bulk.insert_many(Notification, _notes(bulk.COPY_MIN + 5, "role"))
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
    assert all(n.pk for n in notes)
    assert Notification.objects.filter(subject__startswith="role ").count() == bulk.COPY_MIN + 5
    assert any(x["sql"].lstrip().upper().startswith("INSERT") for x in q.captured_queries)
    assert not any(x["sql"].startswith("COPY") for x in q.captured_queries)
