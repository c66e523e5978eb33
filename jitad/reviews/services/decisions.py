"""A reviewer keeps or removes one person: with a fresh MFA step, never about themselves, audited."""
from django.db import transaction
from django.utils import timezone

from jitad.accounts.mfa import MfaStep, mfa_step_audit, mfa_step_fields
from jitad.audit.services import audit_record
from jitad.elevation.services.exclusions import eligibility_exclude
from jitad.engine import queue

from ..errors import ReviewRefused
from ..models import ReviewCampaign, ReviewItem
from ..selectors import is_reviewer, is_self

COMMENT_MAX = 2000
APPLY = "jitad.reviews.item_apply"


def item_decide(*, item: ReviewItem, reviewer, decision: str, comment: str = "", mfa: MfaStep | None) -> ReviewItem:
    """Record ``reviewer``'s decision on ``item`` (``keep`` or ``remove``); the first decision stands.

    A removal takes the eligibility away in the same transaction (an exclusion, when the
    person is a jitad user); leaving the review-managed group in AD follows after commit.
    """
    if decision not in (ReviewItem.Decision.KEEP, ReviewItem.Decision.REMOVE):
        raise ReviewRefused("decision_invalid", "The decision must be keep or remove.")
    comment = (comment or "").strip()
    if len(comment) > COMMENT_MAX:
        raise ReviewRefused("comment_too_long", f"A comment holds at most {COMMENT_MAX} characters.")
    if mfa is None:
        raise ReviewRefused("mfa_required", "A review decision needs a fresh MFA step.")
    item = ReviewItem.objects.select_related("campaign__policy", "user").get(pk=item.pk)
    campaign = item.campaign
    if not is_reviewer(user=reviewer, campaign=campaign):
        raise ReviewRefused("not_reviewer", "You are not a reviewer of this review.")
    if is_self(user=reviewer, item=item):
        raise ReviewRefused("self_review", "Nobody decides whether they themselves stay eligible.")
    now = timezone.now()
    if campaign.state != ReviewCampaign.State.OPEN or now >= campaign.deadline:
        raise ReviewRefused("campaign_closed", f"Review #{campaign.pk} is closed.")
    with transaction.atomic():
        if not ReviewItem.objects.filter(pk=item.pk, decision=ReviewItem.Decision.UNDECIDED).update(
                decision=decision, decided_by=reviewer, decided_at=now, comment=comment, by_default=False,
                **mfa_step_fields(mfa)):
            raise ReviewRefused("already_decided", f"{item.username} was already decided in review #{campaign.pk}.")
        audit_record(actor=reviewer.get_username(), action="review.item_decided", object_type="review_item",
                     object_id=item.pk, before="undecided", after=decision, reason=comment,
                     data={"review": campaign.pk, "policy": campaign.policy.name, "username": item.username,
                           **mfa_step_audit(mfa)})
        if decision == ReviewItem.Decision.REMOVE:
            if item.user is not None:
                eligibility_exclude(policy=campaign.policy, user=item.user, actor=reviewer, source="review",
                                    source_id=item.pk, reason=comment or f"removed in review #{campaign.pk}")
            queue.enqueue_on_commit(APPLY, item.pk)
    item.refresh_from_db()
    return item
