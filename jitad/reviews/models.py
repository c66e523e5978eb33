"""Eligibility reviews (access certification): campaigns per policy, and one item per eligible person.

On a policy's cadence (``Policy.review``) a campaign opens with one item per person the
policy makes eligible (read from AD through the directory seam, plus the policy's named
users). Reviewers keep or remove each; at the deadline every item left undecided takes the
policy's default. A removal becomes an ``elevation.EligibilityExclusion`` (and, where the
policy names a review-managed group under the JIT OU, a removal from that group). Every
step is audited (docs/approvals.md, "Eligibility reviews").
"""
from django.conf import settings
from django.db import models
from django.utils import timezone

from jitad.elevation.models import Policy


class ReviewCampaign(models.Model):
    """One review of one policy's eligible people, open until ``deadline``."""

    class State(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="review_campaigns")
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN, db_index=True)
    opened_at = models.DateTimeField(default=timezone.now)
    deadline = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    # The policy's review settings when it opened (Policy.review's shape): later edits never change its rules.
    rules = models.JSONField(default=dict)
    reminders_sent = models.JSONField(default=list, blank=True, help_text="remind_before_minutes values already sent")

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(fields=["policy"], condition=models.Q(state="open"), name="one_open_review_per_policy"),
        ]

    def __str__(self):
        return f"review #{self.pk} of {self.policy} (until {self.deadline:%Y-%m-%d})"


class ReviewItem(models.Model):
    """Does ``username`` stay eligible under the campaign's policy? Decided by a reviewer, or by the default."""

    class Decision(models.TextChoices):
        UNDECIDED = "", "undecided"
        KEEP = "keep"
        REMOVE = "remove"

    campaign = models.ForeignKey(ReviewCampaign, on_delete=models.CASCADE, related_name="items")
    username = models.CharField(max_length=150)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                             related_name="review_items")
    user_dn = models.CharField(max_length=512, blank=True)
    via = models.JSONField(default=list, blank=True, help_text="what makes them eligible: group names, or 'user'")
    decision = models.CharField(max_length=8, choices=Decision.choices, blank=True, default="")
    by_default = models.BooleanField(default=False, help_text="decided by the policy's default at the deadline")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="review_decisions")
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)
    mfa_method = models.CharField(max_length=16, blank=True, default="")
    mfa_verified_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True, help_text="when a removal took effect")
    outcome = models.TextField(blank=True, help_text="what applying the decision did, or why it failed")

    class Meta:
        ordering = ["username"]
        constraints = [models.UniqueConstraint(fields=["campaign", "username"], name="one_item_per_person")]

    def __str__(self):
        return f"{self.username} in {self.campaign}"
