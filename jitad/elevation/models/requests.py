"""Access requests and the approvals given on them."""
from django.conf import settings
from django.db import models
from django.utils import timezone

from .catalog import Policy, Target


class AccessRequest(models.Model):
    """A person's request for a target, for a duration: new access, or an extension of a grant."""

    class State(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        DENIED = "denied"
        EXPIRED_UNAPPROVED = "expired_unapproved"
        CANCELLED = "cancelled"

    class Kind(models.TextChoices):
        NEW = "new"
        EXTENSION = "extension"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.NEW)
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="access_requests")
    target = models.ForeignKey(Target, on_delete=models.PROTECT, related_name="requests")
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="requests")
    extends = models.ForeignKey(
        "Grant", null=True, blank=True, on_delete=models.PROTECT, related_name="extension_requests"
    )
    duration_minutes = models.PositiveIntegerField()
    justification = models.TextField(blank=True)
    ticket = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=24, choices=State.choices, default=State.PENDING, db_index=True)
    approvals_required = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    pending_until = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # The verified MFA step the request was made with ("" / None: none recorded, e.g. rows older than the record).
    mfa_method = models.CharField(max_length=16, blank=True, default="")
    mfa_verified_at = models.DateTimeField(null=True, blank=True)
    # -- workflows (docs/approvals.md) ----------------------------------------------------------------------
    # The stages this request must pass, copied from its policy (and time window) when it was made: an edit of
    # the policy never changes the rules of a request already waiting. Same shape as Policy.stages.
    stages = models.JSONField(default=list, blank=True)
    stage = models.PositiveSmallIntegerField(default=0, help_text="index of the open stage; len(stages) once all passed")
    stage_opened_at = models.DateTimeField(null=True, blank=True)
    # Who may decide the open stage now (AD group names): its groups, the target's on the first stage, and the
    # escalation groups once it escalated with add_as_approvers. The queues filter on it in the database.
    stage_groups = models.JSONField(default=list, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True, help_text="when the open stage escalated")
    window_action = models.CharField(
        max_length=16, blank=True, default="",
        help_text="what the policy's time window decided when the request was made (policy, auto, extra_stage)",
    )
    starts_at = models.DateTimeField(null=True, blank=True, help_text="a scheduled start; empty: at once")
    client_ip = models.GenericIPAddressField(null=True, blank=True, help_text="the address the request came from")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "pending_until"]),
            models.Index(fields=["state", "created_at"]),
            models.Index(fields=["ticket"]),  # the admin's search matches tickets exactly
        ]

    def __str__(self):
        return f"#{self.pk} {self.requester} → {self.target} ({self.duration_minutes} min)"


class Approval(models.Model):
    """One approver's decision on a request. One per person per request.

    ``approver_groups`` records which of the request's approver groups the approver was
    in when deciding: with ``Policy.distinct_approver_groups`` each approval must count
    for a different group, and the record says afterwards why someone could decide.
    """

    class Decision(models.TextChoices):
        APPROVE = "approve"
        DENY = "deny"

    request = models.ForeignKey(AccessRequest, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approvals_given")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True)
    approver_groups = models.JSONField(default=list, blank=True)
    at = models.DateTimeField(default=timezone.now)
    # The verified MFA step the decision was made with ("" / None: none recorded).
    mfa_method = models.CharField(max_length=16, blank=True, default="")
    mfa_verified_at = models.DateTimeField(null=True, blank=True)
    stage = models.PositiveSmallIntegerField(default=0, help_text="the stage (index) this decision counted for")
    # A deputy deciding in place of an approver away (Delegation): the approval counts as that approver's.
    on_behalf_of = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="approvals_delegated",
    )
    delegation = models.ForeignKey("Delegation", null=True, blank=True, on_delete=models.PROTECT, related_name="approvals")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request", "approver"], name="one_decision_per_approver")]
        indexes = [models.Index(fields=["at"])]  # the reports read a period's decisions
