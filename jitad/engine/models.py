"""Claimed work (the abstract row every kind of background work is), leases, heartbeats and pulses."""
from django.db import models


class ClaimedWork(models.Model):
    """What every row of background work carries: who may act on it now, until when, and how it went.

    The database is the source of truth. A sweep or a service *claims* a row (``claim_token``,
    ``lease_until``) in a short transaction; the message it sends carries the token; the
    execution *takes* the claim (swaps the token for its own, so a duplicate message finds
    nothing; or keeps a token that is its message's own, for idempotent work) and renews the
    lease while it works (``jitad.engine.keeper``); a dead holder's lease lapses and the next
    sweep claims the row again. ``attempts``, ``next_attempt_at`` and ``last_error`` are the
    retry schedule. The verbs are in ``jitad.engine.claims``.
    """

    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        abstract = True


class Lease(models.Model):
    """A named lease that one process holds at a time, until ``expires_at`` unless renewed.

    The scheduler's leadership is the lease ``scheduler``; single-flight jobs (the watchdog)
    take one of their own. A holder that dies stops renewing, and after ``expires_at``
    any other process may take it.
    """

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=200, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.name} held by {self.holder or 'nobody'}"


class Heartbeat(models.Model):
    """A long-running jitad process (a worker, a scheduler) saying it is alive.

    ``node`` is stable across restarts (the worker's node name, or the scheduler's), so a
    process that comes back resolves the alert its death raised. ``stopped_at`` is set on a
    clean shutdown: only a process that stops reporting *without* saying goodbye is a death.
    """

    class Role(models.TextChoices):
        WORKER = "worker"
        SCHEDULER = "scheduler"

    node = models.CharField(max_length=200, unique=True)
    role = models.CharField(max_length=16, choices=Role.choices)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # The broker queues a worker consumes, comma-separated ("" for a scheduler): a queue no
    # live worker consumes is work that waits for ever, and the watchdog says so.
    queues = models.CharField(max_length=500, blank=True, default="")

    def __str__(self):
        return f"{self.role} {self.node}"

    @property
    def queue_names(self) -> list[str]:
        return [q for q in self.queues.split(",") if q]


class Pulse(models.Model):
    """When a periodic piece of work (the sweep) last ran to its end, wherever it ran."""

    name = models.CharField(max_length=64, primary_key=True)
    at = models.DateTimeField()

    def __str__(self):
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"
