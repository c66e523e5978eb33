"""Session evidence: what a grant's account did on the server, read from its Security log."""
from django.db import models

from jitad.engine.models import ClaimedWork

from .grants import Grant


class SessionEvent(models.Model):
    """One Security log event of a grant's account (or a log clearing) on the grant's server.

    Read by the constant script security_events.ps1 (``jitad.hosts.Host.security_events``)
    for the grant's SIDs (the person's, and its ephemeral account's) in the grant's window and
    after it; ``record`` is the log's EventRecordID, so reading a window twice stores an event
    once. ``after_end`` marks an event later than the grant's end (a logon then is a signal:
    the revocation did not take).
    """

    class Kind(models.IntegerChoices):
        LOGON = 4624, "logon"
        LOGOFF = 4634, "logoff"
        LOGOFF_ASKED = 4647, "logoff asked"
        SPECIAL_PRIVILEGES = 4672, "special privileges"
        PROCESS = 4688, "process created"
        ACCOUNT_CREATED = 4720, "local account created"
        ACCOUNT_DELETED = 4726, "local account deleted"
        GROUP_MEMBER_ADDED = 4732, "added to a local group"
        GROUP_MEMBER_REMOVED = 4733, "removed from a local group"
        LOG_CLEARED = 1102, "Security log cleared"

    grant = models.ForeignKey(Grant, on_delete=models.PROTECT, related_name="session_events")
    host = models.CharField(max_length=255, help_text="the target's name when the event was read")
    record = models.BigIntegerField(help_text="the Security log's EventRecordID")
    event_id = models.PositiveIntegerField(choices=Kind.choices)
    at = models.DateTimeField()
    sid = models.CharField(max_length=184, blank=True, help_text="the SID it matched")
    logon_type = models.PositiveSmallIntegerField(null=True, blank=True)
    source = models.CharField(max_length=64, blank=True, help_text="the source network address of a logon")
    logon_id = models.CharField(max_length=32, blank=True)
    process = models.CharField(max_length=1024, blank=True)
    member = models.CharField(max_length=184, blank=True)
    target_sid = models.CharField(max_length=184, blank=True)
    after_end = models.BooleanField(default=False)
    collected_at = models.DateTimeField()

    class Meta:
        ordering = ["at", "record"]
        constraints = [models.UniqueConstraint(fields=["grant", "record"], name="session_event_once_per_grant")]
        indexes = [models.Index(fields=["grant", "at"]), models.Index(fields=["event_id", "at"])]

    def __str__(self):
        return f"{self.get_event_id_display()} on {self.host} at {self.at:%Y-%m-%d %H:%M:%S} (grant #{self.grant_id})"


class EvidencePull(ClaimedWork):
    """The collection of one grant's session evidence from its server: claimed work (``jitad.engine``).

    Created for a grant on a WinRM-managed target once it is live (the evidence sweep finds it).
    Due at ``next_attempt_at``: every JITAD_EVIDENCE_INTERVAL_SECONDS during the grant, and after
    its end until JITAD_EVIDENCE_AFTER_MINUTES past it, then one final read and ``finished_at``.
    ``read_through`` is how far the server's log has been read (the next read starts there, with a
    small overlap: an event read twice is stored once). ``cut`` says that some events were not
    kept: the per-grant cap was reached, or a read the server's bound kept cutting was skipped.
    A server that does not answer is retried with the engine's backoff; when the attempts run
    out the pull is given up (``gave_up``), alerted once, and finished.
    """

    grant = models.OneToOneField(Grant, on_delete=models.CASCADE, related_name="evidence_pull")
    created_at = models.DateTimeField()
    read_through = models.DateTimeField(help_text="the server's log has been read up to here")
    reads = models.PositiveIntegerField(default=0, help_text="calls to the server that answered")
    stored = models.PositiveIntegerField(default=0, help_text="events stored for the grant")
    cut = models.BooleanField(default=False, help_text="some events were not kept (cap reached, or a read skipped)")
    cut_detail = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    gave_up = models.BooleanField(default=False, help_text="the server did not answer; collection was given up")

    class Meta:
        indexes = [models.Index(fields=["finished_at", "next_attempt_at"]), models.Index(fields=["claim_token"])]

    def __str__(self):
        return f"evidence of grant #{self.grant_id}"


class SessionSignal(models.Model):
    """Something in a grant's session evidence that a person should look at; recorded once.

    One per (grant, kind, record): ``record`` is the event's EventRecordID, or 0 for a signal
    about the grant as a whole (its elevation was never used). ``event`` is the stored event
    when there is one (an event past the per-grant cap is not stored: ``detail`` still names it).
    """

    class Kind(models.TextChoices):
        LOGON_AFTER_END = "logon_after_end", "logon after the grant ended"
        LOG_CLEARED = "log_cleared", "Security log cleared"
        UNUSED = "unused", "elevation never used"
        UNEXPECTED_SOURCE = "unexpected_source", "logon from an unexpected source"

    grant = models.ForeignKey(Grant, on_delete=models.PROTECT, related_name="session_signals")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    record = models.BigIntegerField(default=0, help_text="the event's EventRecordID; 0 for a signal about the grant")
    event = models.ForeignKey(SessionEvent, on_delete=models.SET_NULL, null=True, blank=True, related_name="signals")
    severity = models.CharField(max_length=16)
    at = models.DateTimeField(help_text="when it happened (the event's time, or the grant's end)")
    raised_at = models.DateTimeField()
    detail = models.TextField()

    class Meta:
        ordering = ["-at"]
        constraints = [models.UniqueConstraint(fields=["grant", "kind", "record"], name="session_signal_once")]
        indexes = [models.Index(fields=["kind", "at"])]

    def __str__(self):
        return f"{self.get_kind_display()} (grant #{self.grant_id})"
