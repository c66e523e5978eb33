"""The audit trail is append-only and hash-chained: edits and removals are detected."""
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from jitad.audit.models import AuditChainHead, AuditEvent
from jitad.audit.services import GENESIS, AuditEntry, audit_record, audit_record_many, audit_verify


def record(n: int) -> list[AuditEvent]:
    """Append ``n`` events, one transaction each, as the services do."""
    rows = []
    for i in range(n):
        with transaction.atomic():
            rows.append(
                audit_record(actor="alice", action="test.step", object_type="thing", object_id=str(i),
                             before="a", after="b", reason=f"step {i}", data={"i": i})
            )
    return rows


def verify_command() -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("jitad_audit_verify", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db(transaction=True)
def test_record_outside_a_transaction_refused():
    """GIVEN autocommit (no atomic block) WHEN a change is audited THEN RuntimeError and
    nothing is written: the event must commit or roll back with the change it describes."""
    # Only this test's events are looked for: in the parallel run the session's worker may audit its own
    # work meanwhile (seen once in CI).
    mine = AuditEvent.objects.filter(actor="alice", action="test.step")
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit_record(actor="alice", action="test.step", object_type="thing", object_id="1")
    assert not mine.exists()
    with transaction.atomic():
        audit_record(actor="alice", action="test.step", object_type="thing", object_id="1")
    assert mine.count() == 1


@pytest.mark.django_db(transaction=True)
def test_event_rolls_back_with_its_transaction(no_background_worker):
    """(Only this test's event is looked for: in a parallel run, processes an earlier test started may still
    write events of their own.)"""
    with pytest.raises(ZeroDivisionError):
        with transaction.atomic():
            audit_record(actor="alice", action="test.step", object_type="thing", object_id="1")
            1 / 0  # noqa: B018 - the change being audited fails
    assert not AuditEvent.objects.filter(action="test.step").exists()
    record(2)
    assert audit_verify() == []


@pytest.mark.django_db
def test_events_chain_each_to_the_previous():
    rows = record(3)
    with transaction.atomic():
        rows += audit_record_many([AuditEntry("bob", "test.batch", "thing", str(i)) for i in range(3)])
    stored = list(AuditEvent.objects.order_by("id"))
    assert [e.hash for e in stored] == [r.hash for r in rows]
    assert stored[0].prev_hash == GENESIS
    for prev, ev in zip(stored, stored[1:]):
        assert ev.prev_hash == prev.hash
    assert len({e.hash for e in stored}) == 6
    head = AuditChainHead.objects.get(pk=1)
    assert (head.last_hash, head.count) == (stored[-1].hash, 6)
    assert audit_verify() == []


@pytest.mark.django_db
def test_verify_empty_chain_is_intact():
    assert audit_verify() == []


@pytest.mark.django_db
def test_edited_row_detected():
    """GIVEN an intact chain WHEN someone rewrites a reason with a queryset update (which
    bypasses save()) THEN verification names that event as edited."""
    rows = record(3)
    AuditEvent.objects.filter(pk=rows[1].pk).update(reason="nothing to see here")
    problems = audit_verify()
    assert len(problems) == 1
    assert f"event {rows[1].pk}" in problems[0] and "edited" in problems[0]


@pytest.mark.django_db
def test_edited_data_or_actor_detected():
    rows = record(3)
    AuditEvent.objects.filter(pk=rows[0].pk).update(data={"i": 99})
    AuditEvent.objects.filter(pk=rows[2].pk).update(actor="mallory")
    problems = audit_verify()
    assert any(f"event {rows[0].pk}" in p for p in problems)
    assert any(f"event {rows[2].pk}" in p for p in problems)


@pytest.mark.django_db
def test_deleted_middle_row_detected():
    rows = record(3)
    AuditEvent.objects.filter(pk=rows[1].pk).delete()
    problems = audit_verify()
    assert problems, "a removed event must break the chain"
    assert any(f"event {rows[2].pk}" in p and "removed" in p for p in problems)


@pytest.mark.django_db
def test_deleted_first_row_detected():
    rows = record(3)
    AuditEvent.objects.filter(pk=rows[0].pk).delete()
    assert any(f"event {rows[1].pk}" in p for p in audit_verify())


@pytest.mark.django_db
def test_deleted_last_row_detected():
    """GIVEN an intact chain WHEN the newest event is deleted (no later row to notice)
    THEN the chain head's hash and count no longer match and verification says so."""
    rows = record(3)
    AuditEvent.objects.filter(pk=rows[-1].pk).delete()
    problems = audit_verify()
    assert problems == ["the chain head does not match the last event (rows were removed from the end)"]


@pytest.mark.django_db
def test_deleting_everything_detected():
    record(2)
    AuditEvent.objects.all().delete()
    assert audit_verify() != []


@pytest.mark.django_db
def test_model_refuses_update_and_delete():
    (row,) = record(1)
    row.reason = "rewritten"
    with pytest.raises(ValueError, match="append-only"):
        row.save()
    with pytest.raises(ValueError, match="append-only"):
        row.delete()
    stored = AuditEvent.objects.get(pk=row.pk)
    assert stored.reason == "step 0"
    assert audit_verify() == []


@pytest.mark.django_db
def test_verify_command_reports_intact_then_fails_after_tampering():
    rows = record(3)
    out, err = verify_command()
    assert "intact" in out
    assert err == ""

    AuditEvent.objects.filter(pk=rows[0].pk).update(reason="edited")
    err = StringIO()
    with pytest.raises(CommandError, match="broken in 1 place"):
        call_command("jitad_audit_verify", stdout=StringIO(), stderr=err)
    assert f"event {rows[0].pk}" in err.getvalue()


@pytest.mark.django_db
def test_a_past_date_is_for_demo_history_only(settings):
    """GIVEN an entry dated in the past WHEN it is appended outside production THEN it keeps that date and the chain
    verifies; in production the same entry is refused and nothing is written."""
    from datetime import timedelta

    from django.utils import timezone

    when = timezone.now() - timedelta(days=40)
    with transaction.atomic():
        (ev,) = audit_record_many([AuditEntry("system:demo", "grant.revoked", "grant", "7", at=when)])
    assert AuditEvent.objects.get(pk=ev.pk).at == when
    assert audit_verify() == []
    settings.PRODUCTION = True
    with pytest.raises(ValueError, match="demo history only"), transaction.atomic():
        audit_record_many([AuditEntry("system:demo", "grant.revoked", "grant", "8", at=when)])
    assert AuditEvent.objects.count() == 1
