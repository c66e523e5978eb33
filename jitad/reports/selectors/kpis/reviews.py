"""Eligibility review outcomes in the period: reviews closed, people kept, removed by reviewers, removed by default.

A row per outcome, each linked to the admin rows behind it (the campaigns, or their items).
Reviews count when they closed in the period; a filter on targets or a policy keeps the
reviews of the policies that cover them.
"""
from jitad.reviews.models import ReviewCampaign, ReviewItem

from ...figures import Column, Table
from .common import Scope, records

COLUMNS = [Column("outcome", "Outcome"), Column("count", "Count")]


def review_outcomes(scope: Scope) -> Table:
    """One table: reviews closed, kept, removed by reviewers, removed by default (three queries)."""
    campaigns = ReviewCampaign.objects.filter(state=ReviewCampaign.State.CLOSED, closed_at__gte=scope.start,
                                              closed_at__lt=scope.end)
    if scope.policy is not None:
        campaigns = campaigns.filter(policy__name=scope.policy)
    if scope.target_ids is not None:
        campaigns = campaigns.filter(policy__targets__id__in=scope.target_ids)
    campaign_ids = sorted(set(campaigns.order_by().values_list("id", flat=True)))
    kept, removed, removed_default = [], [], []
    for pk, decision, by_default in (ReviewItem.objects.filter(campaign_id__in=campaign_ids).order_by()
                                     .values_list("id", "decision", "by_default")):
        if decision == ReviewItem.Decision.KEEP:
            kept.append(pk)
        elif decision == ReviewItem.Decision.REMOVE:
            (removed_default if by_default else removed).append(pk)
    rows = [("Reviews closed", "reviews.reviewcampaign", campaign_ids), ("Kept", "reviews.reviewitem", kept),
            ("Removed by reviewers", "reviews.reviewitem", removed),
            ("Removed by default (nobody decided)", "reviews.reviewitem", removed_default)]
    recs = {i: rec for i, (_label, model, ids) in enumerate(rows) if (rec := records(model, ids)) is not None}
    return Table(key="reviews", title="Eligibility reviews closed in the period", columns=COLUMNS,
                 rows=[{"outcome": label, "count": len(ids)} for label, _model, ids in rows], records=recs)
