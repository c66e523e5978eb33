"""Append-only, hash-chained audit events."""
from django.db import models
from django.utils import timezone

from jitad.engine.models import ClaimedWork


class AuditEvent(models.Model):
    """One state change: who did what to which object, when, why, and before → after.

    Rows are append-only: ``save`` refuses to update and ``delete`` refuses outright.
    Each row's ``hash`` covers its content and the previous row's hash, so editing or
    removing a row in the database breaks the chain (``manage.py jitad_audit_verify``).
    """

    # Gapless position in the chain (1..n, continuing across pruning): a SIEM that sees
    # seq jump knows events are missing; set from the chain head under its lock.
    seq = models.PositiveBigIntegerField(unique=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150, help_text="username, or system:<component>")
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    before = models.CharField(max_length=32, blank=True)
    after = models.CharField(max_length=32, blank=True)
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    # Not unique, nor indexed: nothing looks an event up by its hash, and ``seq`` (unique) orders the chain. A
    # mass expiry writes two events per grant, and each index of this table is written for every one of them.
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["object_type", "object_id"]),  # an object's trail
            models.Index(fields=["action", "at"]),  # the reports: an action over a period
        ]
        permissions = [("export_auditevent", "Can export audit events")]

    def __str__(self):
        return f"#{self.seq} {self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("audit events are append-only")


class AuditChainHead(models.Model):
    """The single row that serialises appends to the chain (locked FOR UPDATE while appending)."""

    last_hash = models.CharField(max_length=64, default="0" * 64)
    count = models.BigIntegerField(default=0, help_text="events ever appended: the seq of the last one")


class AuditCheckpoint(models.Model):
    """Where the kept chain starts after pruning (a single row, pk=1).

    ``seq`` and ``hash`` are those of the last pruned event: the first kept event's
    ``prev_hash`` must equal ``hash`` and its ``seq`` must be ``seq + 1``, so the rest of the
    chain still verifies, and an edit or removal after the checkpoint is still detected.
    """

    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)
    pruned_at = models.DateTimeField(null=True, blank=True)
    pruned_total = models.PositiveBigIntegerField(default=0, help_text="events pruned over all runs")
    last_pruned = models.PositiveBigIntegerField(default=0, help_text="events the last run pruned")
    before = models.DateTimeField(null=True, blank=True, help_text="the last run's cut-off")


class SiemCursor(ClaimedWork):
    """How far one SIEM destination (JITAD_SIEM_<NAME>_URL) has been sent the audit chain.

    The audit table is the outbox: every event with ``seq`` above ``last_seq`` is still to
    send, in seq order. Claimed work (jitad.engine): a sweep or a wake-up claims the cursor,
    sends a bounded batch outside any transaction, and advances ``last_seq`` only after the
    destination accepted it, while still holding the claim. A failed send goes through
    ``claims.attempt_failed`` and is retried with backoff for as long as the outage lasts.
    """

    name = models.CharField(max_length=64, unique=True)
    last_seq = models.PositiveBigIntegerField(default=0)
    last_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "SIEM cursor"

    def __str__(self):
        return f"SIEM {self.name} at seq {self.last_seq}"
