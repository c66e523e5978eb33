"""Reads of eligibility reviews: who reviews a campaign, which items a person may decide, what is due.

Reviewers are the members of the campaign's ``rules["reviewers"]`` AD groups (mirrored into
Django groups; names compare case-insensitively), active, and never the person an item is
about: that item is shown to them but is not theirs to decide.
"""
from dataclasses import dataclass, field
from datetime import timedelta
from functools import reduce
from operator import or_

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Count, Q

from jitad.accounts.groups import group_names
from jitad.elevation.models import Policy

from .models import ReviewCampaign, ReviewItem


def _lower(values) -> set[str]:
    return {str(v).lower() for v in values or []}


def reviewer_groups(campaign: ReviewCampaign) -> list[str]:
    """The AD groups whose members review ``campaign`` (as its rules were when it opened)."""
    return [g for g in (campaign.rules or {}).get("reviewers", []) if isinstance(g, str)]


def is_reviewer(*, user, campaign: ReviewCampaign, groups: set[str] | None = None) -> bool:
    """True if ``user`` is an active member of one of ``campaign``'s reviewer groups."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    mine = group_names(user) if groups is None else groups
    return bool(mine & _lower(reviewer_groups(campaign)))


def is_self(*, user, item: ReviewItem) -> bool:
    """True if ``item`` is about ``user`` (linked, or by the same name)."""
    return (item.user_id is not None and item.user_id == user.pk) or item.username.lower() == user.get_username().lower()


def can_decide(*, user, item: ReviewItem, groups: set[str] | None = None) -> bool:
    """True if ``user`` may keep or remove ``item`` now: a reviewer, not its subject, the item and campaign open."""
    campaign = item.campaign
    return (campaign.state == ReviewCampaign.State.OPEN and item.decision == ReviewItem.Decision.UNDECIDED
            and is_reviewer(user=user, campaign=campaign, groups=groups) and not is_self(user=user, item=item))


def reviewers_of(*, campaign: ReviewCampaign) -> list:
    """Active users in ``campaign``'s reviewer groups (those with an e-mail address can be told)."""
    names = reviewer_groups(campaign)
    if not names:
        return []
    groups = Group.objects.filter(reduce(or_, (Q(name__iexact=n) for n in names)))
    return list(get_user_model().objects.filter(is_active=True, groups__in=groups).distinct().order_by("pk"))


@dataclass
class CampaignForReviewer:
    """One open campaign as a reviewer sees it: its items, and which of them are theirs to decide."""

    campaign: ReviewCampaign
    items: list[ReviewItem] = field(default_factory=list)
    decidable: set[int] = field(default_factory=set)

    @property
    def waiting(self) -> int:
        return len(self.decidable)


def campaigns_for_reviewer(*, user) -> list[CampaignForReviewer]:
    """Every open campaign ``user`` reviews, soonest deadline first, with all its items (three queries)."""
    groups = group_names(user)
    if not user.is_active or not groups:
        return []
    campaigns = [c for c in ReviewCampaign.objects.filter(state=ReviewCampaign.State.OPEN).select_related("policy")
                 .order_by("deadline", "pk") if is_reviewer(user=user, campaign=c, groups=groups)]
    if not campaigns:
        return []
    result = {c.pk: CampaignForReviewer(campaign=c) for c in campaigns}
    for item in ReviewItem.objects.filter(campaign_id__in=list(result)).select_related("decided_by").order_by("username"):
        entry = result[item.campaign_id]
        item.campaign = entry.campaign
        entry.items.append(item)
        if can_decide(user=user, item=item, groups=groups):
            entry.decidable.add(item.pk)
    return list(result.values())


def is_reviewer_anywhere(*, user) -> bool:
    """True if ``user`` reviews some open campaign (the portal shows them the Reviews page)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    groups = group_names(user)
    return bool(groups) and any(
        groups & _lower((rules or {}).get("reviewers"))
        for rules in ReviewCampaign.objects.filter(state=ReviewCampaign.State.OPEN).values_list("rules", flat=True)
    )


def item_for_reviewer(*, user, item_id) -> ReviewItem | None:
    """The item with ``item_id`` if ``user`` reviews its campaign (open or closed), else None (not disclosed)."""
    try:
        item_id = int(item_id)
    except (TypeError, ValueError):
        return None
    item = ReviewItem.objects.select_related("campaign__policy", "user", "decided_by").filter(pk=item_id).first()
    if item is None or not is_reviewer(user=user, campaign=item.campaign):
        return None
    return item


# -- what the sweep finds ---------------------------------------------------------------------
def policies_due(*, now) -> list[Policy]:
    """Enabled policies with a review whose next campaign is due: none open, and none opened within ``every``."""
    due = []
    candidates = [p for p in Policy.objects.filter(enabled=True).order_by("name") if (p.review or {}).get("every_minutes")]
    if not candidates:
        return []
    ids = [p.pk for p in candidates]
    open_ids = set(ReviewCampaign.objects.filter(policy_id__in=ids, state=ReviewCampaign.State.OPEN)
                   .values_list("policy_id", flat=True))
    last: dict[int, object] = {}
    for policy_id, opened_at in (ReviewCampaign.objects.filter(policy_id__in=ids).order_by("policy_id", "opened_at")
                                 .values_list("policy_id", "opened_at")):
        last[policy_id] = opened_at
    for policy in candidates:
        if policy.pk in open_ids:
            continue
        previous = last.get(policy.pk)
        if previous is None or now - previous >= timedelta(minutes=policy.review["every_minutes"]):
            due.append(policy)
    return due


def policy_review_due(*, policy: Policy, now) -> bool:
    """True if ``policy`` reviews and its next campaign is due now (asked again inside the opening transaction)."""
    every = (policy.review or {}).get("every_minutes")
    if not every or not policy.enabled:
        return False
    campaigns = ReviewCampaign.objects.filter(policy=policy)
    if campaigns.filter(state=ReviewCampaign.State.OPEN).exists():
        return False
    last = campaigns.order_by("-opened_at").values_list("opened_at", flat=True).first()
    return last is None or now - last >= timedelta(minutes=every)


def campaigns_to_close(*, now):
    """Open campaigns whose deadline has passed."""
    return ReviewCampaign.objects.filter(state=ReviewCampaign.State.OPEN, deadline__lte=now).order_by("deadline", "pk")


def campaigns_open():
    return ReviewCampaign.objects.filter(state=ReviewCampaign.State.OPEN).select_related("policy").order_by("deadline", "pk")


def items_to_apply(*, limit: int):
    """Removals not yet applied (a reviewer's or the default's), oldest first."""
    return (ReviewItem.objects.filter(decision=ReviewItem.Decision.REMOVE, applied_at__isnull=True)
            .order_by("decided_at", "pk")[:limit])


def campaign_counts(*, campaign: ReviewCampaign) -> dict[str, int]:
    """How the campaign's items were decided: kept, removed by reviewers, removed by default, kept by default, undecided."""
    rows = (ReviewItem.objects.filter(campaign=campaign).values("decision", "by_default").annotate(n=Count("id")))
    counts = {"kept": 0, "kept_by_default": 0, "removed": 0, "removed_by_default": 0, "undecided": 0}
    for row in rows:
        if row["decision"] == ReviewItem.Decision.UNDECIDED:
            key = "undecided"
        else:
            key = ("kept" if row["decision"] == ReviewItem.Decision.KEEP else "removed") + \
                  ("_by_default" if row["by_default"] else "")
        counts[key] += row["n"]
    return counts
