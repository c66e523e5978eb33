"""What the servers themselves said: scans of local Administrators and the standing admins found."""
from django.db import models
from django.utils import timezone

from .catalog import Target


class HostScan(models.Model):
    """One standing-admin scan of one server's local Administrators group."""

    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="host_scans")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    members = models.PositiveIntegerField(default=0)
    standing = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["target", "-started_at"])]

    def __str__(self):
        return f"scan of {self.target} at {self.started_at:%Y-%m-%d %H:%M}"


class StandingAdmin(models.Model):
    """A member of a server's local Administrators that no JIT grant explains: standing privilege.

    Open while ``resolved_at`` is empty; a scan that no longer sees it resolves it.
    """

    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="standing_admins")
    sid = models.CharField(max_length=184)
    name = models.CharField(max_length=255, blank=True, help_text="DOMAIN\\name, or the SID when it no longer resolves")
    path = models.CharField(max_length=512, blank=True)
    member_class = models.CharField(max_length=32, blank=True)
    is_group = models.BooleanField(default=False)
    orphaned = models.BooleanField(default=False, help_text="the SID resolves to no account (deleted)")
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["target__name", "name"]
        constraints = [models.UniqueConstraint(fields=["target", "sid"], name="one_finding_per_sid")]

    def __str__(self):
        return f"{self.name or self.sid} on {self.target}"
