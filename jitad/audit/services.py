"""Writing and verifying the audit chain."""
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from jitad.bulk import insert_many
from jitad.engine import queue

from .models import AuditChainHead, AuditCheckpoint, AuditEvent, SiemCursor

GENESIS = "0" * 64


@dataclass
class AuditEntry:
    """What the caller knows about one state change; the chain fields are added on write."""

    actor: str
    action: str
    object_type: str
    object_id: str
    before: str = ""
    after: str = ""
    reason: str = ""
    data: dict = field(default_factory=dict)
    # When the change happened if not now: only for importing past history into a throwaway
    # (demo) database; refused in production, where an event is always dated as it is written.
    at: datetime | None = None


def _digest(prev_hash: str, at: datetime, e: AuditEntry) -> str:
    body = json.dumps(
        [prev_hash, at.isoformat(), e.actor, e.action, e.object_type, str(e.object_id), e.before, e.after, e.reason, e.data],
        sort_keys=True,
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


def audit_record_many(entries: list[AuditEntry]) -> list[AuditEvent]:
    """Append entries to the chain in the caller's transaction (which must be open)."""
    if not entries:
        return []
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the transaction that makes the change")
    head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
    prev = head.last_hash
    rows, now = [], timezone.now()  # one instant for the entries written together
    for seq, e in enumerate(entries, start=head.count + 1):
        if e.at is not None and settings.PRODUCTION:
            raise ValueError("audit events are dated when written; a past date is for demo history only")
        at = e.at or now
        digest = _digest(prev, at, e)
        rows.append(
            AuditEvent(
                seq=seq,
                at=at,
                actor=e.actor,
                action=e.action,
                object_type=e.object_type,
                object_id=str(e.object_id),
                before=e.before,
                after=e.after,
                reason=e.reason,
                data=e.data,
                prev_hash=prev,
                hash=digest,
            )
        )
        prev = digest
    insert_many(AuditEvent, rows)
    head.last_hash = prev
    head.count += len(rows)
    head.save(update_fields=["last_hash", "count"])
    _wake_siem_on_commit()
    return rows


SIEM_WAKE = "jitad.audit.siem_send"


def _wake_siem() -> None:
    queue.enqueue(SIEM_WAKE, queue="notifications")  # beside deliveries: a slow SIEM never holds the engine


def _wake_siem_on_commit() -> None:
    """One wake-up message per transaction for the SIEM outbox, however many events it appends.

    The periodic sweep sends anything a lost wake-up leaves behind; without destinations
    nothing is queued at all.
    """
    if not settings.JITAD_SIEM_DESTINATIONS:
        return
    if any(func is _wake_siem for _, func, _ in connection.run_on_commit):
        return
    transaction.on_commit(_wake_siem)


def audit_record(**kwargs) -> AuditEvent:
    """Append one event; see :class:`AuditEntry` for the fields."""
    return audit_record_many([AuditEntry(**kwargs)])[0]


def audit_verify() -> list[str]:
    """Walk the chain in seq order from the pruning checkpoint; return every break (empty list: intact)."""
    problems = []
    checkpoint = AuditCheckpoint.objects.filter(pk=1).first()
    prev = checkpoint.hash if checkpoint else GENESIS
    expected = (checkpoint.seq if checkpoint else 0) + 1
    for ev in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        entry = AuditEntry(ev.actor, ev.action, ev.object_type, ev.object_id, ev.before, ev.after, ev.reason, ev.data)
        if ev.seq != expected:
            problems.append(f"event {ev.id}: seq {ev.seq} where {expected} was expected (events were removed)")
        if ev.prev_hash != prev:
            problems.append(f"event {ev.id}: previous hash does not match event before it (a row was removed or reordered)")
        if _digest(ev.prev_hash, ev.at, entry) != ev.hash:
            problems.append(f"event {ev.id}: content does not match its hash (the row was edited)")
        prev = ev.hash
        expected = ev.seq + 1
    head = AuditChainHead.objects.filter(pk=1).first()
    if head and (head.last_hash != prev or head.count != expected - 1):
        problems.append("the chain head does not match the last event (rows were removed from the end)")
    return problems


PRUNE_BATCH = 5000


def audit_prune(*, before: datetime) -> int:
    """Delete the oldest events, those older than ``before``, keeping a checkpoint; returns how many.

    Only a prefix of the chain goes (up to the first event at or after ``before``), and
    never an event some configured SIEM destination has not been sent yet. Each batch is
    deleted in its own short transaction together with the checkpoint update (the seq and
    hash of the last pruned event), so ``audit_verify`` checks the rest at every moment and
    the chain head is never locked for long: appends (revocations) go on meanwhile. The
    prune itself is audited (in the chain, and so in the SIEM stream).
    """
    upto = _prunable_up_to(before)
    pruned = 0
    now = timezone.now()
    while True:
        with transaction.atomic():
            checkpoint, _ = AuditCheckpoint.objects.select_for_update().get_or_create(pk=1)
            if checkpoint.seq >= upto:
                break
            high = min(upto, checkpoint.seq + PRUNE_BATCH)
            last = AuditEvent.objects.filter(seq=high).only("seq", "hash").first()
            if last is None:  # the chain is already broken there: refuse rather than hide it
                raise RuntimeError(f"audit event seq {high} is missing: run manage.py jitad_audit_verify")
            # QuerySet.delete bypasses AuditEvent.delete, which refuses single-row deletes.
            count = AuditEvent.objects.filter(seq__gt=checkpoint.seq, seq__lte=high).delete()[0]
            pruned += count
            checkpoint.seq, checkpoint.hash, checkpoint.pruned_at, checkpoint.before = high, last.hash, now, before
            checkpoint.last_pruned = pruned
            checkpoint.pruned_total += count
            checkpoint.save()
    if pruned:
        with transaction.atomic():
            checkpoint = AuditCheckpoint.objects.get(pk=1)
            audit_record(actor="system:retention", action="audit.pruned", object_type="audit",
                         object_id=str(checkpoint.seq), reason=f"retention: events before {before.isoformat()}",
                         data={"pruned": pruned, "checkpoint_seq": checkpoint.seq,
                               "checkpoint_hash": checkpoint.hash, "before": before.isoformat()})
    return pruned


def _prunable_up_to(before: datetime) -> int:
    """The last seq that may go: older than ``before``, and sent to every configured SIEM destination.

    Read without locks: the head and the cursors only move forward, so this is never too far.
    """
    head = AuditChainHead.objects.filter(pk=1).first()
    checkpoint = AuditCheckpoint.objects.filter(pk=1).first()
    start = checkpoint.seq if checkpoint else 0
    upto = head.count if head else 0
    first_kept = AuditEvent.objects.filter(at__gte=before).aggregate(m=Min("seq"))["m"]
    if first_kept is not None:
        upto = min(upto, first_kept - 1)
    for name in settings.JITAD_SIEM_DESTINATIONS:
        cursor = SiemCursor.objects.filter(name=name).first()
        upto = min(upto, cursor.last_seq if cursor else start)
    return upto
