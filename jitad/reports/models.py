"""Rows the reports own: daily snapshots, the baseline of each managed right, and the ``view_reports`` permission."""
from django.db import models
from django.utils import timezone


class ReportAccess(models.Model):
    """No table: the holder of the ``reports.view_reports`` permission sees the Reports area.

    Give it to the security and audit people (a group in the admin) without making them
    approvers or superusers.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_reports", "Can view reports, access history and exports")]


class DailySnapshot(models.Model):
    """One target's privileged-access figures for one day (UTC), so trends survive restarts and retention.

    Written once per (day, target) by the daily task (and back-filled from the records for
    days before the first run); rewriting a day gives the same row. ``standing_principals``
    is None when the target had no successful standing-admin scan by the end of the day
    (nothing known, not zero).
    """

    day = models.DateField()
    target = models.ForeignKey("elevation.Target", on_delete=models.CASCADE, related_name="+")
    tier = models.PositiveSmallIntegerField(help_text="the target's tier when the snapshot was taken")
    standing_principals = models.PositiveIntegerField(null=True, blank=True,
                                                      help_text="open standing admins at the end of the day")
    standing_principal_hours = models.FloatField(null=True, blank=True)
    jit_principals = models.PositiveIntegerField(default=0, help_text="distinct people elevated during the day")
    jit_principal_hours = models.FloatField(default=0.0)
    grants_started = models.PositiveIntegerField(default=0)
    recorded_at = models.DateTimeField(default=timezone.now)
    backfilled = models.BooleanField(default=False, help_text="computed later from the records, not on the day")

    class Meta:
        ordering = ["day", "target_id"]
        constraints = [models.UniqueConstraint(fields=["day", "target"], name="one_snapshot_per_day_target")]
        indexes = [models.Index(fields=["target", "day"])]

    def __str__(self):
        return f"snapshot of {self.target_id} on {self.day}"


class RightBaseline(models.Model):
    """The first reading of a managed right: who held it before jitad managed it (the reduction's baseline).

    ``first_scan_*``: the first successful standing-admin scan of the target's server;
    ``first_reading_*``: the reconciler's first reading of the JIT group (members, and those
    no grant backed). Written once each, never updated.
    """

    group_dn = models.CharField(max_length=512, unique=True)
    target = models.ForeignKey("elevation.Target", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    first_scan_at = models.DateTimeField(null=True, blank=True)
    first_scan_standing = models.PositiveIntegerField(null=True, blank=True)
    first_scan_id = models.BigIntegerField(null=True, blank=True)
    first_reading_at = models.DateTimeField(null=True, blank=True)
    first_reading_members = models.PositiveIntegerField(null=True, blank=True)
    first_reading_unbacked = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self):
        return f"baseline of {self.group_dn}"
