"""Sequence numbers and pruning: the kept chain still verifies from its checkpoint."""
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from jitad.audit.models import AuditCheckpoint, AuditEvent, SiemCursor
from jitad.audit.services import AuditEntry, audit_prune, audit_record, audit_record_many, audit_verify


def record(n: int) -> list[AuditEvent]:
    rows = []
    for i in range(n):
        with transaction.atomic():
            rows.append(audit_record(actor="alice", action="test.step", object_type="thing", object_id=str(i)))
    return rows


def verify_command() -> str:
    out = StringIO()
    call_command("jitad_audit_verify", stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_seq_is_gapless_across_batches():
    record(2)
    with transaction.atomic():
        audit_record_many([AuditEntry("bob", "test.batch", "thing", str(i)) for i in range(3)])
    assert list(AuditEvent.objects.order_by("id").values_list("seq", flat=True)) == [1, 2, 3, 4, 5]


@pytest.mark.django_db
def test_prune_keeps_a_verifiable_chain(settings):
    """GIVEN 5 events, a cut-off, then 3 more WHEN pruning before the cut-off THEN the 5 go, a checkpoint
    holds the 5th's hash, the prune is audited as seq 9, and the rest verifies; an edit
    or removal after the checkpoint is still detected."""
    settings.JITAD_SIEM_DESTINATIONS = {}
    old = record(5)
    cut = timezone.now()
    new = record(3)
    assert audit_prune(before=cut) == 5
    cp = AuditCheckpoint.objects.get(pk=1)
    assert (cp.seq, cp.hash, cp.last_pruned, cp.pruned_total) == (5, old[-1].hash, 5, 5)
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == [6, 7, 8, 9]
    pruned = AuditEvent.objects.get(seq=9)
    assert pruned.action == "audit.pruned" and pruned.data["checkpoint_hash"] == old[-1].hash
    assert audit_verify() == []
    text = verify_command()
    assert "pruned: 5 event(s) up to seq 5" in text and "audit chain intact" in text
    assert audit_prune(before=cut) == 0  # nothing older left
    AuditEvent.objects.filter(pk=new[1].pk).update(reason="edited")
    assert any("edited" in p for p in audit_verify())
    AuditEvent.objects.filter(pk=new[1].pk).delete()
    with pytest.raises(CommandError):
        verify_command()


@pytest.mark.django_db
def test_prune_removing_the_first_kept_row_is_detected(settings):
    settings.JITAD_SIEM_DESTINATIONS = {}
    record(3)
    cut = timezone.now()
    kept = record(2)
    audit_prune(before=cut)
    AuditEvent.objects.filter(pk=kept[0].pk).delete()
    problems = audit_verify()
    assert any("seq 5 where 4" in p for p in problems)


@pytest.mark.django_db
def test_prune_never_removes_undelivered_events(settings, monkeypatch):
    """GIVEN a SIEM destination sent up to seq 2 of 6 old events WHEN pruning everything old
    THEN only seq 1-2 go; once the cursor reaches 6 the rest can go (in batches of 3 here)."""
    monkeypatch.setattr("jitad.audit.services.PRUNE_BATCH", 3)
    settings.JITAD_SIEM_DESTINATIONS = {"splunk": {"url": "https://127.0.0.1:1/x", "transport": "https",
                                                   "format": "hec", "token": "t", "ca_file": ""}}
    record(6)
    SiemCursor.objects.create(name="splunk", last_seq=2)
    cut = timezone.now()
    assert audit_prune(before=cut) == 2
    SiemCursor.objects.filter(name="splunk").update(last_seq=7)  # 6 events + the prune's own
    assert audit_prune(before=cut) == 4
    assert audit_verify() == []
    assert AuditCheckpoint.objects.get(pk=1).pruned_total == 6


@pytest.mark.django_db
def test_destination_without_cursor_blocks_pruning(settings):
    settings.JITAD_SIEM_DESTINATIONS = {"new": {"url": "https://127.0.0.1:1/x", "transport": "https",
                                                "format": "hec", "token": "", "ca_file": ""}}
    record(3)
    assert audit_prune(before=timezone.now()) == 0
