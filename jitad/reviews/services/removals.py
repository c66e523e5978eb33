"""Carrying out a removal: the exclusion, and leaving the review-managed group in AD.

Outside any transaction around the network call; retried by the sweep until it is done;
a failure raises one alert (a lasting condition) and its success resolves it. The group is
written only through the directory seam, which refuses anything outside the JIT OU (and
well-known privileged groups) before a word reaches the DC, whatever the rules say.

A person the review removed who is not a jitad user yet: the AD side is done at once,
the exclusion when they first appear (the sweep links them by user name).
"""
import logging

from django.db import transaction
from django.utils import timezone

from jitad import directory
from jitad.audit.services import audit_record
from jitad.elevation.services.exclusions import eligibility_exclude
from jitad.notifications.services.conditions import condition_raise, condition_resolve

from ..models import ReviewItem
from .campaigns import ACTOR, users_by_name

log = logging.getLogger(__name__)
WAITING = "removed from the managed group; the exclusion waits for the person's first jitad login"
NO_USER = "the exclusion waits for the person's first jitad login"


def _key(item: ReviewItem) -> str:
    return f"review-removal:{item.pk}"


def items_link(items: list[ReviewItem]) -> None:
    """Link items to jitad users that exist now (one query for all)."""
    waiting = [i for i in items if i.user_id is None]
    users = users_by_name(i.username for i in waiting)
    for item in waiting:
        user = users.get(item.username.lower())
        if user is not None:
            item.user = user
            ReviewItem.objects.filter(pk=item.pk, user__isnull=True).update(user=user)


def item_apply(*, item: ReviewItem) -> bool:
    """Apply ``item``'s removal; True once it is fully applied (now or before)."""
    item = ReviewItem.objects.select_related("campaign__policy", "user").get(pk=item.pk)
    if item.decision != ReviewItem.Decision.REMOVE or item.applied_at is not None:
        return item.applied_at is not None
    campaign, policy = item.campaign, item.campaign.policy
    items_link([item])
    managed = (campaign.rules or {}).get("managed_group") or ""
    group_done = not managed or not item.user_dn or item.outcome == WAITING
    outcome = ""
    if not group_done:
        try:
            with directory.connect() as d:
                removed = d.remove_member(managed, item.user_dn)
            group_done = True
            outcome = f"removed from {managed}" if removed else f"not in {managed} (nothing to remove)"
        except directory.DirectoryError as e:
            why = f"{type(e).__name__}: {e}"
            ReviewItem.objects.filter(pk=item.pk).update(outcome=f"failed, retried by the sweep: {why}"[:2000])
            log.warning("review item %s: removing %s from %s failed: %s", item.pk, item.user_dn, managed, why)
            condition_raise(key=_key(item), event="review.removal_failed",
                            subject=f"Review #{campaign.pk}: {item.username} not removed from {directory.group_label(managed)}",
                            body=(f"Review #{campaign.pk} of policy {policy.name} removed {item.username}, but taking "
                                  f"{item.user_dn} out of {managed} failed: {why}. jitad keeps trying on every sweep."))
            return False
    if item.user is None:
        ReviewItem.objects.filter(pk=item.pk).update(outcome=WAITING if managed and item.user_dn else NO_USER)
        return False
    with transaction.atomic():
        exclusion = eligibility_exclude(policy=policy, user=item.user, actor=ACTOR, source="review", source_id=item.pk,
                                        reason=f"removed in review #{campaign.pk}")
        text = "; ".join(t for t in (f"excluded from {policy.name} (exclusion #{exclusion.pk})", outcome) if t)
        if ReviewItem.objects.filter(pk=item.pk, applied_at__isnull=True).update(applied_at=timezone.now(),
                                                                                 outcome=text[:2000]):
            audit_record(actor=ACTOR, action="review.item_applied", object_type="review_item", object_id=item.pk,
                         before="remove", after="applied", reason=text,
                         data={"review": campaign.pk, "policy": policy.name, "username": item.username,
                               "managed_group": managed, "exclusion": exclusion.pk})
    condition_resolve(key=_key(item), event="review.removal_failed",
                      subject=f"Review #{campaign.pk}: {item.username} removed", body=text)
    return True
