"""Opening a review campaign (one item per eligible person) and closing it at its deadline."""
import logging
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from jitad.audit.services import audit_record
from jitad.elevation.models import Policy
from jitad.elevation.services.exclusions import eligibility_exclude

from ..models import ReviewCampaign, ReviewItem
from ..selectors import campaign_counts, policy_review_due, reviewers_of
from .notices import notice_campaign_opened
from .people import EligibleRead

log = logging.getLogger(__name__)
ACTOR = "system:reviews"


def users_by_name(names) -> dict:
    """jitad users by lowered user name (one query)."""
    names = {n.lower() for n in names}
    if not names:
        return {}
    users = get_user_model().objects.annotate(key=Lower("username")).filter(key__in=names)
    return {u.key: u for u in users}


def campaign_open(*, policy: Policy, read: EligibleRead, now=None) -> ReviewCampaign | None:
    """Open ``policy``'s next campaign with one item per person in ``read``; None when it is not due
    (one is open, or the last opened within ``every``) or another process opened it first."""
    now = now or timezone.now()
    rules = dict(policy.review or {})
    if not rules.get("every_minutes"):
        return None
    deadline = now + timedelta(minutes=rules["deadline_minutes"])
    # A reminder as long before the deadline as the whole review is already said by the opening notice.
    said = [m for m in rules.get("remind_before_minutes", []) if m >= rules["deadline_minutes"]]
    with transaction.atomic():
        if not policy_review_due(policy=policy, now=now):
            return None
        try:
            with transaction.atomic():
                campaign = ReviewCampaign.objects.create(policy=policy, opened_at=now, deadline=deadline, rules=rules,
                                                         reminders_sent=said)
        except IntegrityError:  # opened by another process at the same moment
            return None
        users = users_by_name(p.username for p in read.people)
        ReviewItem.objects.bulk_create([
            ReviewItem(campaign=campaign, username=p.username, user=users.get(p.username), user_dn=p.dn, via=p.via)
            for p in read.people
        ])
        audit_record(actor=ACTOR, action="review.opened", object_type="review", object_id=campaign.pk, after="open",
                     data={"policy": policy.name, "items": len(read.people), "deadline": deadline.isoformat(),
                           "reviewers": rules.get("reviewers", []), "default": rules.get("default"),
                           "not_found": read.not_found})
        notice_campaign_opened(campaign=campaign, reviewers=reviewers_of(campaign=campaign), items=len(read.people))
    log.info("review #%s of policy %s opened with %d item(s)", campaign.pk, policy.name, len(read.people))
    return campaign


def campaign_close(*, campaign: ReviewCampaign, now=None) -> bool:
    """Close ``campaign``: every undecided item takes the policy's default. True if this call closed it.

    A default removal takes the eligibility away at once (an exclusion for a jitad user);
    the AD side (the review-managed group) is left to :func:`..removals.item_apply`, outside
    this transaction.
    """
    now = now or timezone.now()
    default = campaign.rules.get("default", ReviewItem.Decision.REMOVE)
    with transaction.atomic():
        if not ReviewCampaign.objects.filter(pk=campaign.pk, state=ReviewCampaign.State.OPEN).update(
                state=ReviewCampaign.State.CLOSED, closed_at=now):
            return False
        undecided = ReviewItem.objects.filter(campaign=campaign, decision=ReviewItem.Decision.UNDECIDED)
        ids = list(undecided.values_list("id", flat=True))
        ReviewItem.objects.filter(id__in=ids, decision=ReviewItem.Decision.UNDECIDED).update(
            decision=default, by_default=True, decided_at=now)
        if default == ReviewItem.Decision.REMOVE:
            for item in ReviewItem.objects.filter(id__in=ids, user__isnull=False).select_related("user"):
                eligibility_exclude(policy=campaign.policy, user=item.user, actor=ACTOR, source="review",
                                    source_id=item.pk, reason=f"removed by default when review #{campaign.pk} closed")
        counts = campaign_counts(campaign=campaign)
        audit_record(actor=ACTOR, action="review.closed", object_type="review", object_id=campaign.pk, before="open",
                     after="closed", reason=f"deadline passed; undecided items took the default ({default})",
                     data={"policy": campaign.policy.name, **counts})
    campaign.state, campaign.closed_at = ReviewCampaign.State.CLOSED, now
    log.info("review #%s closed: %s", campaign.pk, counts)
    return True
