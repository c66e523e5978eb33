"""Session evidence: what a grant's account did on the server, read from its Security log."""
from django.db import models

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
