"""Writing and verifying the audit chain."""
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from .models import AuditChainHead, AuditEvent

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
    rows = []
    for e in entries:
        at = timezone.now()
        digest = _digest(prev, at, e)
        rows.append(
            AuditEvent(
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
    AuditEvent.objects.bulk_create(rows, batch_size=1000)
    head.last_hash = prev
    head.count += len(rows)
    head.save(update_fields=["last_hash", "count"])
    return rows


def audit_record(**kwargs) -> AuditEvent:
    """Append one event; see :class:`AuditEntry` for the fields."""
    return audit_record_many([AuditEntry(**kwargs)])[0]


def audit_verify() -> list[str]:
    """Walk the chain; return a description of every break (empty list: intact)."""
    problems = []
    prev = GENESIS
    count = 0
    for ev in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        count += 1
        entry = AuditEntry(ev.actor, ev.action, ev.object_type, ev.object_id, ev.before, ev.after, ev.reason, ev.data)
        if ev.prev_hash != prev:
            problems.append(f"event {ev.id}: previous hash does not match event before it (a row was removed or reordered)")
        if _digest(ev.prev_hash, ev.at, entry) != ev.hash:
            problems.append(f"event {ev.id}: content does not match its hash (the row was edited)")
        prev = ev.hash
    head = AuditChainHead.objects.filter(pk=1).first()
    if head and (head.last_hash != prev or head.count != count):
        problems.append("the chain head does not match the last event (rows were removed from the end)")
    return problems
