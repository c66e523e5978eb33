"""Append-only, hash-chained audit events."""
from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """One state change: who did what to which object, when, why, and before → after.

    Rows are append-only: ``save`` refuses to update and ``delete`` refuses outright.
    Each row's ``hash`` covers its content and the previous row's hash, so editing or
    removing a row in the database breaks the chain (``manage.py jitad_audit_verify``).
    """

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150, help_text="username, or system:<component>")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    before = models.CharField(max_length=32, blank=True)
    after = models.CharField(max_length=32, blank=True)
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("audit events are append-only")


class AuditChainHead(models.Model):
    """The single row that serialises appends to the chain (locked FOR UPDATE while appending)."""

    last_hash = models.CharField(max_length=64, default="0" * 64)
    count = models.BigIntegerField(default=0)
