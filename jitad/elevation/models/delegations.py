"""Deputies: an approver hands their approval right to a named person for a period (docs/approvals.md, "Deputies").

A delegation never widens anything: the deputy decides, in the delegator's name, exactly
the requests the delegator could decide themselves (never the delegator's own, never the
deputy's own), only while it runs, and never passes it on. Every change is audited and
both people are told.
"""
from django.conf import settings
from django.db import models
from django.utils import timezone


class Delegation(models.Model):
    """``deputy`` may decide in place of ``delegator`` from ``starts_at`` until ``ends_at`` (or its revocation)."""

    delegator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="delegations_given")
    deputy = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="delegations_received")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=150, blank=True)
    # The verified MFA step the delegation was made with ("" / None: none recorded).
    mfa_method = models.CharField(max_length=16, blank=True, default="")
    mfa_verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-starts_at"]
        indexes = [models.Index(fields=["deputy", "ends_at"]), models.Index(fields=["delegator", "ends_at"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(ends_at__gt=models.F("starts_at")), name="delegation_ends_after_start"),
            models.CheckConstraint(condition=~models.Q(deputy=models.F("delegator")), name="delegation_not_to_self"),
        ]

    def __str__(self):
        return f"{self.delegator} → {self.deputy} ({self.starts_at:%Y-%m-%d} – {self.ends_at:%Y-%m-%d})"

    def running(self, at=None) -> bool:
        """True while the deputy may decide: started, not ended, not revoked."""
        at = at or timezone.now()
        return self.revoked_at is None and self.starts_at <= at < self.ends_at
