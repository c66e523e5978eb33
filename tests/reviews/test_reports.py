"""Review outcomes in the Reports' risk section: counted from the records, each row linked to its admin rows."""
from datetime import timedelta

import pytest
from django.utils import timezone

from jitad.reports.exports import records_url
from jitad.reports.selectors.kpis import report_build
from jitad.reviews.models import ReviewCampaign, ReviewItem
from tests.elevation.builders import policy, target

pytestmark = pytest.mark.django_db


def test_review_outcomes_are_counted_and_linked():
    """GIVEN one review closed in the period (one kept, one removed by a reviewer, two removed by default) and one
    closed before it WHEN the report is built THEN the reviews table counts the period's and links each row."""
    now = timezone.now()
    p = policy(target("SRV01"))
    old = ReviewCampaign.objects.create(policy=p, opened_at=now - timedelta(days=60), deadline=now - timedelta(days=59),
                                        state="closed", closed_at=now - timedelta(days=59))
    ReviewItem.objects.create(campaign=old, username="x", decision="remove", by_default=True)
    c = ReviewCampaign.objects.create(policy=p, opened_at=now - timedelta(days=2), deadline=now - timedelta(days=1),
                                      state="closed", closed_at=now - timedelta(days=1))
    kept = ReviewItem.objects.create(campaign=c, username="a", decision="keep")
    removed = ReviewItem.objects.create(campaign=c, username="b", decision="remove")
    ReviewItem.objects.create(campaign=c, username="c", decision="remove", by_default=True)
    ReviewItem.objects.create(campaign=c, username="d", decision="remove", by_default=True)
    report = report_build(start=now - timedelta(days=30), end=now)
    table = next(t for t in report.section("risk").tables if t.key == "reviews")
    assert [(r["outcome"], r["count"]) for r in table.rows] == [
        ("Reviews closed", 1), ("Kept", 1), ("Removed by reviewers", 1), ("Removed by default (nobody decided)", 2)]
    assert records_url(table.records[0]) == f"/admin/reviews/reviewcampaign/?id__in={c.pk}"
    assert records_url(table.records[1]) == f"/admin/reviews/reviewitem/?id__in={kept.pk}"
    assert records_url(table.records[2]) == f"/admin/reviews/reviewitem/?id__in={removed.pk}"
    other = report_build(start=now - timedelta(days=30), end=now, policy="no-such-policy")
    assert [r["count"] for r in next(t for t in other.section("risk").tables if t.key == "reviews").rows] == [0, 0, 0, 0]
