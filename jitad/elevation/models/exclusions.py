"""Eligibility taken away by a review (docs/approvals.md, "Eligibility reviews").

Eligibility comes from AD groups jitad does not own; a review that removes a person records
an exclusion here, which every eligibility check honours, so the person can no longer
request under that policy whatever their AD groups say. Where the policy names a
review-managed eligibility group under the JIT OU, the review also takes them out of it.
"""
from django.conf import settings
from django.db import models
from django.utils import timezone

from .catalog import Policy


class EligibilityExclusion(models.Model):
    """``user`` may not request under ``policy`` (until lifted)."""

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="exclusions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="eligibility_exclusions")
    reason = models.TextField(blank=True)
    source = models.CharField(max_length=32, default="review", help_text="what removed the eligibility (review)")
    source_id = models.PositiveIntegerField(null=True, blank=True, help_text="e.g. the review item's id")
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "user"], condition=models.Q(lifted_at__isnull=True),
                                    name="one_live_exclusion_per_policy_user"),
        ]

    def __str__(self):
        return f"{self.user} excluded from {self.policy}"
